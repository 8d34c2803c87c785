// Package shapetest is the shape diagnosis's acceptance test: planted shapes of every kind
// diagnosed through gretatest.Bisect, in a test binary of its own (each case bisects, and the
// long prompts' cases run the reference over a long prompt several times).
package shapetest

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest"
	"github.com/gretabisect/gretabisect/internal/bisecttest"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/testutil"
)

// shapeCase plants a fault and says what the shape diagnosis must report at its origin, in
// a few words each:
//
//	pos:  all | from N | only N | range A B | every T phase F from N | decode from N | decode only N
//	ch:   all | heads H... | range A B | one C
//	kind: scale X | offset X | affine X Y | shift K | zero | nan | inf | sign | f16 | bf16
type shapeCase struct {
	prompt, fault  string
	pos, ch, kind  string
	hyp            golden.Hypothesis
	layer, originP int // the origin the self-bisection must isolate
	// noDecode generates no tokens: a NaN or Inf reaches the logits and changes the
	// generated tokens, which self-bisection then takes for the first divergence.
	noDecode bool
}

// shapeCases are the planted shapes: every kind, position pattern and channel pattern, at
// stages from embed_out to logits, in traced (0, 1, 2, 4, 8) and untraced (3, 5, 6, 7, 9)
// layers, at early, untraced (16, 33), decode (50+) and the critical positions 826 and 1652.
// The m50 prompt is the first 50 tokens of p6_len_16 with 3 generated tokens.
func shapeCases() []shapeCase {
	const (
		pe  = golden.HypothesisPositionEncoding
		kv  = golden.HypothesisKVCache
		num = golden.HypothesisPrecision
		mem = golden.HypothesisMemoryLayout
		no  = golden.HypothesisNone
	)
	return []shapeCase{
		{"m50", "stage=k_post_rope,layer=3,pos>=20,head=1,scale=1.02", "from 20", "heads 1", "scale 1.02", pe, 3, 20, false},
		{"m50", "stage=q_post_rope,layer=1,pos>=16,ch=8..15,sign", "from 16", "range 8 15", "sign", pe, 1, 16, false},
		{"m50", "stage=q_post_rope,layer=5,pos>=33,scale=1.05", "from 33", "all", "scale 1.05", pe, 5, 33, false},
		{"m50", "stage=k_post_rope,layer=8,pos>=49,head=0,add=0.5", "from 49", "heads 0", "offset 0.5", pe, 8, 49, false},
		{"m50", "stage=v,layer=0,pos>=5,shift=2", "from 5", "all", "shift 2", kv, 0, 5, false},
		{"m50", "stage=k_post_rope,layer=6,pos>=30,shift=1", "from 30", "all", "shift 1", kv, 6, 30, false},
		{"m50", "stage=attn_ctx,layer=3,pos>=20,head=3,shift=4", "from 20", "heads 3", "shift 4", kv, 3, 20, false},
		{"m50", "stage=attn_ctx,layer=7,pos>=10,head=5,scale=1.5", "from 10", "heads 5", "scale 1.5", kv, 7, 10, false},
		{"m50", "stage=v,layer=8,pos>=50,scale=1.1", "decode from 50", "all", "scale 1.1", kv, 8, 50, false},
		{"m50", "stage=k_pre_rope,layer=0,pos>=3,shift=3", "from 3", "all", "shift 3", mem, 0, 3, false},
		{"m50", "stage=residual_post_attn,layer=0,pos=20..29,shift=10", "range 20 29", "all", "shift 10", mem, 0, 20, false},
		{"m50", "stage=embed_out,pos>=10,shift=5", "from 10", "all", "shift 5", mem, -1, 10, false},
		{"m50", "stage=attn_ctx,layer=2,every=8,phase=3,head=2,zero", "every 8 phase 3 from 3", "heads 2", "zero", mem, 2, 3, false},
		{"m50", "stage=mlp_out,layer=0,pos>=2,every=4,phase=2,sign", "every 4 phase 2 from 2", "all", "sign", mem, 0, 2, false},
		{"m50", "stage=v,layer=5,every=2,phase=1,ch=10..20,scale=3", "every 2 phase 1 from 1", "range 10 20", "scale 3", mem, 5, 1, false},
		{"m50", "stage=residual_post_mlp,layer=1,every=16,phase=2,ch=100,nan", "every 16 phase 2 from 2", "one 100", "nan", mem, 1, 2, true},
		{"m50", "stage=ffn_norm_in,layer=3,pos>=40,ch=64..127,sign", "from 40", "range 64 127", "sign", mem, 3, 40, false},
		{"m50", "stage=ffn_norm_in,layer=7,pos=0,zero", "only 0", "all", "zero", mem, 7, 0, false},
		{"m50", "stage=logits,pos=10,ch=5..9,zero", "only 10", "range 5 9", "zero", mem, 10, 10, false},
		{"m50", "stage=attn_out,layer=4,pos>=12,round=bf16", "from 12", "all", "bf16", num, 4, 12, false},
		{"m50", "stage=residual_post_attn,layer=9,round=f16", "all", "all", "f16", num, 9, 0, false},
		{"m50", "stage=q_pre_rope,layer=2,pos=7,head=3,round=f16", "only 7", "heads 3", "f16", num, 2, 7, false},
		{"m50", "stage=attn_ctx,layer=9,pos>=44,head=6..7,round=bf16", "from 44", "heads 6 7", "bf16", num, 9, 44, false},
		{"m50", "stage=attn_out,layer=1,pos>=35,ch=200..255,round=f16", "from 35", "range 200 255", "f16", num, 1, 35, false},
		{"m50", "stage=attn_in,layer=6,pos>=25,ch=0,inf", "from 25", "one 0", "inf", num, 6, 25, true},
		{"m50", "stage=mlp_out,layer=6,pos>=30,nan", "from 30", "all", "nan", num, 6, 30, true},
		{"m50", "stage=mlp_out,layer=8,pos=33,scale=1.01", "only 33", "all", "scale 1.01", no, 8, 33, false},
		{"m50", "stage=mlp_out,layer=5,pos=10..20,add=0.05", "range 10 20", "all", "offset 0.05", no, 5, 10, false},
		{"m50", "stage=residual_post_mlp,layer=2,pos>=16,scale=0.999", "from 16", "all", "scale 0.999", no, 2, 16, false},
		{"m50", "stage=residual_pre_attn,layer=4,pos>=20,scale=2,add=1", "from 20", "all", "affine 2 1", no, 4, 20, true},
		{"m50", "stage=embed_out,pos=2..5,scale=2", "range 2 5", "all", "scale 2", no, -1, 2, false},
		{"m50", "stage=mlp_out,layer=4,pos>=14,ch=128..159,scale=1.25", "from 14", "range 128 159", "scale 1.25", mem, 4, 14, false},
		{prompts.P6Len16, "stage=k_post_rope,layer=3,pos>=826,scale=1.01", "from 826", "all", "scale 1.01", pe, 3, 826, false},
		{prompts.P6Len16, "stage=attn_ctx,layer=1,every=64,head=4,zero", "every 64 phase 0 from 0", "heads 4", "zero", mem, 1, 0, false},
		{prompts.P6Len32, "stage=v,layer=4,pos>=1652,ch=3,round=bf16", "from 1652", "one 3", "bf16", num, 4, 1652, false},
	}
}

// TestShapeDiagnosis plants each shape into the CPU reference running the tiny model, bisects
// it with gretatest.Bisect, and checks the diagnosed positions, channels, kind (with its
// number) and hypothesis, and that the shape's line follows the FIRST_FAIL line. -short
// runs every third 50-token case. A clean run diagnoses nothing.
func TestShapeDiagnosis(t *testing.T) {
	m, byID := bisecttest.ModelPrompts(t, model.TinySpec)
	var cases []shapeCase
	for i, c := range shapeCases() {
		if !testing.Short() || (c.prompt == "m50" && i%3 == 0) {
			cases = append(cases, c)
		}
	}
	cache := gretatest.NewCache()
	start := time.Now()
	var passed atomic.Int32
	t.Cleanup(func() {
		t.Logf("%d of %d planted shapes diagnosed as planted in %v", passed.Load(), len(cases), time.Since(start).Round(time.Millisecond))
	})
	opts := func(extra ...gretatest.Option) []gretatest.Option {
		return append([]gretatest.Option{gretatest.LoadedModel(model.TinySpec, m), gretatest.Backend("cpu"), gretatest.Share(cache), gretatest.NoArtifacts(),
			gretatest.Env(func(string) string { return "" }), gretatest.Update(false)}, extra...)
	}
	t.Run("clean", func(t *testing.T) {
		t.Parallel()
		tb := bisecttest.NewRecorder(t.Name())
		rep := gretatest.Bisect(tb, []gretatest.Prompt{byID["m50"]}, opts(gretatest.Baseline(), gretatest.MaxNewTokens(3))...)
		pr := rep.Prompts[0]
		if len(tb.Errors) != 0 || pr.Shape != nil || pr.ShapeErr != nil || pr.Result == nil || pr.Result.Shape != nil {
			t.Errorf("a clean run: errors %q, shape %v, shape error %v", tb.Errors, pr.Shape, pr.ShapeErr)
		}
	})
	for _, c := range cases {
		t.Run(c.prompt+"/"+c.fault, func(t *testing.T) {
			t.Parallel()
			o := opts(gretatest.InjectSpec(c.fault))
			switch {
			case c.noDecode:
				o = append(o, gretatest.MaxNewTokens(0))
			case c.prompt == "m50":
				o = append(o, gretatest.MaxNewTokens(3))
			}
			if c.prompt == "m50" {
				o = append(o, gretatest.Baseline()) // the standard prompts compare with their goldens, of the default plan
			}
			tb := bisecttest.NewRecorder(t.Name())
			pr := gretatest.Bisect(tb, []gretatest.Prompt{byID[c.prompt]}, o...).Prompts[0]
			if pr.Origin == nil || pr.Origin.Layer != c.layer || pr.Origin.Pos != c.originP {
				t.Fatalf("origin %v, want layer %d pos %d\n%s", pr.Origin, c.layer, c.originP, strings.Join(tb.Errors, "\n"))
			}
			sh := pr.Shape
			if sh == nil {
				t.Fatalf("no shape: %v", pr.ShapeErr)
			}
			if pr.Result.Shape != sh {
				t.Errorf("the reports' prompt result does not carry the shape")
			}
			// The line right after the FIRST_FAIL line.
			if len(tb.Errors) != 1 || !strings.HasPrefix(tb.Errors[0], pr.Line+"\n"+sh.Line()+"\n") {
				t.Errorf("the failure message does not give the shape's line after the FIRST_FAIL line:\n%s", strings.Join(tb.Errors, "\n"))
			}
			if errs := checkShapeWords(sh, c); len(errs) > 0 {
				t.Errorf("%s\n%s", strings.Join(errs, "\n"), sh.Line())
				return
			}
			passed.Add(1)
		})
	}
}

// checkShapeWords compares a shape with a case's words.
func checkShapeWords(sh *golden.Shape, c shapeCase) []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	w := strings.Fields(c.pos)
	p := sh.Positions
	num := func(s string) int { n, _ := strconv.Atoi(s); return n }
	switch {
	case w[0] == "all":
		if p.Pattern != golden.PositionsAll {
			bad("positions %s, want all", p.Pattern)
		}
	case w[0] == "from" || w[0] == "decode" && w[1] == "from":
		if p.Pattern != golden.PositionsFrom && p.Pattern != golden.PositionsAll || p.First != num(w[len(w)-1]) || p.Decode != (w[0] == "decode") {
			bad("positions %s from %d (decode %v), want %s", p.Pattern, p.First, p.Decode, c.pos)
		}
	case w[0] == "only":
		if p.Pattern != golden.PositionsOnly || p.First != num(w[1]) {
			bad("positions %s %d, want only %s", p.Pattern, p.First, w[1])
		}
	case w[0] == "range":
		if p.Pattern != golden.PositionsRange || p.First != num(w[1]) || p.Last != num(w[2]) {
			bad("positions %s %d..%d, want %s", p.Pattern, p.First, p.Last, c.pos)
		}
	case w[0] == "every":
		if p.Pattern != golden.PositionsPeriodic || p.Period != num(w[1]) || p.Phase != num(w[3]) || p.First != num(w[5]) {
			bad("positions %s period %d phase %d from %d, want %s", p.Pattern, p.Period, p.Phase, p.First, c.pos)
		}
	}
	w = strings.Fields(c.ch)
	ch := sh.Channels
	switch w[0] {
	case "all":
		if ch.Pattern != golden.ChannelsAll {
			bad("channels %s, want all", ch.Pattern)
		}
	case "heads":
		want := fmt.Sprint(w[1:])
		if ch.Pattern != golden.ChannelsHeads || fmt.Sprint(intsText(ch.Heads)) != want {
			bad("channels %s %v, want heads %s", ch.Pattern, ch.Heads, want)
		}
	case "range":
		if ch.Pattern != golden.ChannelsRange || ch.Lo != num(w[1]) || ch.Hi != num(w[2]) {
			bad("channels %s %d..%d, want %s", ch.Pattern, ch.Lo, ch.Hi, c.ch)
		}
	case "one":
		if ch.Pattern != golden.ChannelsOne || ch.Lo != num(w[1]) {
			bad("channels %s %d, want %s", ch.Pattern, ch.Lo, c.ch)
		}
	}
	w = strings.Fields(c.kind)
	k := sh.Kind
	name := map[string]golden.KindName{"scale": golden.KindScale, "offset": golden.KindOffset, "affine": golden.KindAffine,
		"shift": golden.KindShift, "zero": golden.KindZero, "nan": golden.KindNaN, "inf": golden.KindInf,
		"sign": golden.KindSign, "f16": golden.KindRoundF16, "bf16": golden.KindRoundBF16}[w[0]]
	if k.Name != name {
		bad("kind %s, want %s", k.Name, name)
	}
	close := func(got float64, want string) bool { // to float32's precision of the planted number
		x, _ := strconv.ParseFloat(want, 64)
		return math.Abs(got-x) <= 1e-5*math.Abs(x)
	}
	switch {
	case w[0] == "scale" && !close(k.Factor, w[1]), w[0] == "offset" && !close(k.Offset, w[1]),
		w[0] == "affine" && (!close(k.Factor, w[1]) || !close(k.Offset, w[2])), w[0] == "shift" && k.Shift != num(w[1]):
		bad("kind %s factor %v offset %v shift %d, want %s", k.Name, k.Factor, k.Offset, k.Shift, c.kind)
	}
	if sh.Hypothesis != c.hyp {
		bad("hypothesis %s, want %s", sh.Hypothesis, c.hyp)
	}
	return errs
}

func intsText(v []int) []string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = strconv.Itoa(x)
	}
	return out
}

// TestShapeExec diagnoses a bug planted in an external engine (internal/fakeengine through
// GRETA_BACKEND's exec: form) that writes raw rows beside its trace.
func TestShapeExec(t *testing.T) {
	bin := testutil.FakeEngine(t)
	m, byID := bisecttest.ModelPrompts(t, model.TinySpec)
	tb := bisecttest.NewRecorder(t.Name())
	backend := "exec:" + bin + " --model {model} --prompt-file {prompt} --raw-only --plant stage=attn_ctx,layer=5,pos>=16,head=2,zero"
	pr := gretatest.Bisect(tb, []gretatest.Prompt{byID["m50"]}, gretatest.LoadedModel(model.TinySpec, m), gretatest.Backend(backend),
		gretatest.Baseline(), gretatest.MaxNewTokens(2), gretatest.Env(func(string) string { return "" }), gretatest.NoArtifacts(), gretatest.Update(false)).Prompts[0]
	if pr.Shape == nil {
		t.Fatalf("no shape: %v\n%s", pr.ShapeErr, strings.Join(tb.Errors, "\n"))
	}
	c := shapeCase{pos: "from 16", ch: "heads 2", kind: "zero", hyp: golden.HypothesisMemoryLayout}
	if errs := checkShapeWords(pr.Shape, c); len(errs) > 0 {
		t.Errorf("%s\n%s", strings.Join(errs, "\n"), pr.Shape.Line())
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveFakeEngine()
	os.Exit(code)
}
