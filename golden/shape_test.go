package golden_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
)

const synthHeadDim = 32

// synthWidth is the row width of a stage in a model like the tiny one: 8 query heads and 2
// key-value heads of 32, width 256, 512 logits.
func synthWidth(st golden.Stage) int {
	switch st {
	case golden.KPreRope, golden.KPostRope, golden.V:
		return 64
	case golden.Logits:
		return 512
	}
	return 256
}

// synthCase plants faults (GRETA_INJECT syntax) in rows of random values and says what the
// diagnosis must find.
type synthCase struct {
	name    string
	stage   golden.Stage
	faults  string
	n       int                          // positions 0..n-1
	nPrompt int                          // default n
	edit    func(cand, base [][]float32) // a change no fault spec says, made after the faults
	pos     golden.PositionShape         // Pattern, First, Last, Period, Phase, Decode, Ends compared
	ch      golden.ChannelShape          // Pattern, Lo, Hi, Heads compared
	kind    golden.KindName
	number  float64 // Factor (scale, affine), Offset (offset) or Shift, when not 0
	offset  float64 // affine's offset
	hyp     golden.Hypothesis
	line    string // a piece the line must hold
}

func synthCases() []synthCase {
	all := golden.ChannelShape{Pattern: golden.ChannelsAll}
	return []synthCase{
		{name: "rope head scale", stage: golden.KPostRope, faults: "stage=k_post_rope,pos>=20,head=1,scale=1.02", n: 40,
			pos:  golden.PositionShape{Pattern: golden.PositionsFrom, First: 20, Last: 39},
			ch:   golden.ChannelShape{Pattern: golden.ChannelsHeads, Lo: 32, Hi: 63, Heads: []int{1}},
			kind: golden.KindScale, number: 1.02, hyp: golden.HypothesisPositionEncoding,
			line: "shape: positions >= 20 (all of 20..39); channels: head 1 (of 2); kind: uniform scale x1.02 -> hypothesis: position encoding"},
		{name: "v shift", stage: golden.V, faults: "stage=v,pos>=20,shift=1", n: 40,
			pos: golden.PositionShape{Pattern: golden.PositionsFrom, First: 20, Last: 39}, ch: all,
			kind: golden.KindShift, number: 1, hyp: golden.HypothesisKVCache, line: "rows shifted by 1 (position p holds the row of p-1)"},
		{name: "k_pre_rope shift", stage: golden.KPreRope, faults: "stage=k_pre_rope,shift=3", n: 40,
			pos: golden.PositionShape{Pattern: golden.PositionsFrom, First: 3, Last: 39}, ch: all,
			kind: golden.KindShift, number: 3, hyp: golden.HypothesisMemoryLayout},
		{name: "periodic head zero", stage: golden.AttnCtx, faults: "stage=attn_ctx,every=8,phase=3,head=2,zero", n: 40,
			pos:  golden.PositionShape{Pattern: golden.PositionsPeriodic, First: 3, Last: 35, Period: 8, Phase: 3},
			ch:   golden.ChannelShape{Pattern: golden.ChannelsHeads, Lo: 64, Hi: 95, Heads: []int{2}},
			kind: golden.KindZero, hyp: golden.HypothesisMemoryLayout, line: "positions: every 8th (p % 8 == 3), from 3 on; channels: head 2 (of 8); kind: zeros"},
		{name: "periodic range ends", stage: golden.MLPOut, faults: "stage=mlp_out,pos=10..40,every=10,scale=0.5", n: 60,
			pos: golden.PositionShape{Pattern: golden.PositionsPeriodic, First: 10, Last: 40, Period: 10, Phase: 0, Ends: true},
			ch:  all, kind: golden.KindScale, number: 0.5, hyp: golden.HypothesisMemoryLayout, line: "every 10th (p % 10 == 0), 10..40"},
		{name: "mlp scale everywhere", stage: golden.MLPOut, faults: "stage=mlp_out,scale=1.001", n: 30,
			pos: golden.PositionShape{Pattern: golden.PositionsAll, First: 0, Last: 29}, ch: all,
			kind: golden.KindScale, number: 1.001, hyp: golden.HypothesisNone, line: "positions: all (0..29); channels: all 256; kind: uniform scale x1.001"},
		{name: "offset range", stage: golden.MLPOut, faults: "stage=mlp_out,pos=10..19,add=0.25", n: 30,
			pos: golden.PositionShape{Pattern: golden.PositionsRange, First: 10, Last: 19}, ch: all,
			kind: golden.KindOffset, number: 0.25, hyp: golden.HypothesisNone, line: "positions 10..19 (10 of them); channels: all 256; kind: additive offset +0.25"},
		{name: "affine", stage: golden.ResidualPreAttn, faults: "stage=residual_pre_attn,pos=7,scale=2,add=-1", n: 20,
			pos: golden.PositionShape{Pattern: golden.PositionsOnly, First: 7, Last: 7}, ch: all,
			kind: golden.KindAffine, number: 2, offset: -1, hyp: golden.HypothesisNone, line: "position 7 only"},
		{name: "bf16", stage: golden.AttnOut, faults: "stage=attn_out,pos>=5,round=bf16", n: 30,
			pos: golden.PositionShape{Pattern: golden.PositionsFrom, First: 5, Last: 29}, ch: all,
			kind: golden.KindRoundBF16, hyp: golden.HypothesisPrecision, line: "kind: rounded to bf16"},
		{name: "f16", stage: golden.ResidualPostAttn, faults: "stage=residual_post_attn,round=f16", n: 30,
			pos: golden.PositionShape{Pattern: golden.PositionsAll, First: 0, Last: 29}, ch: all,
			kind: golden.KindRoundF16, hyp: golden.HypothesisPrecision},
		{name: "f16 one row of one head", stage: golden.QPreRope, faults: "stage=q_pre_rope,pos=12,head=3,round=f16", n: 30,
			pos:  golden.PositionShape{Pattern: golden.PositionsOnly, First: 12, Last: 12},
			ch:   golden.ChannelShape{Pattern: golden.ChannelsHeads, Lo: 96, Hi: 127, Heads: []int{3}},
			kind: golden.KindRoundF16, hyp: golden.HypothesisPrecision},
		{name: "rope sign range", stage: golden.QPostRope, faults: "stage=q_post_rope,ch=10..19,sign", n: 30,
			pos:  golden.PositionShape{Pattern: golden.PositionsAll, First: 0, Last: 29},
			ch:   golden.ChannelShape{Pattern: golden.ChannelsRange, Lo: 10, Hi: 19},
			kind: golden.KindSign, hyp: golden.HypothesisPositionEncoding, line: "channels: 10..19 (10 channels); kind: sign flipped"},
		{name: "one NaN", stage: golden.FFNNormIn, faults: "stage=ffn_norm_in,pos=30,ch=7,nan", n: 40,
			pos:  golden.PositionShape{Pattern: golden.PositionsOnly, First: 30, Last: 30},
			ch:   golden.ChannelShape{Pattern: golden.ChannelsOne, Lo: 7, Hi: 7},
			kind: golden.KindNaN, hyp: golden.HypothesisMemoryLayout, line: "channels: one element, channel 7; kind: NaN"},
		{name: "NaN rows", stage: golden.AttnIn, faults: "stage=attn_in,pos>=30,nan", n: 40,
			pos: golden.PositionShape{Pattern: golden.PositionsFrom, First: 30, Last: 39}, ch: all,
			kind: golden.KindNaN, hyp: golden.HypothesisPrecision},
		{name: "Inf", stage: golden.AttnIn, faults: "stage=attn_in,pos>=33,ch=0..127,inf", n: 40,
			pos:  golden.PositionShape{Pattern: golden.PositionsFrom, First: 33, Last: 39},
			ch:   golden.ChannelShape{Pattern: golden.ChannelsRange, Lo: 0, Hi: 127},
			kind: golden.KindInf, hyp: golden.HypothesisPrecision},
		{name: "decode only", stage: golden.MLPOut, faults: "stage=mlp_out,pos>=25,scale=1.5", n: 30, nPrompt: 25,
			pos: golden.PositionShape{Pattern: golden.PositionsFrom, First: 25, Last: 29, Decode: true}, ch: all,
			kind: golden.KindScale, number: 1.5, hyp: golden.HypothesisKVCache, line: "decode only"},
		{name: "two heads", stage: golden.AttnCtx, faults: "stage=attn_ctx,pos>=4,head=1,scale=3;stage=attn_ctx,pos>=4,head=5,scale=3", n: 20,
			pos:  golden.PositionShape{Pattern: golden.PositionsFrom, First: 4, Last: 19},
			ch:   golden.ChannelShape{Pattern: golden.ChannelsHeads, Lo: 32, Hi: 191, Heads: []int{1, 5}},
			kind: golden.KindScale, number: 3, hyp: golden.HypothesisKVCache, line: "heads 1, 5 (of 8)"},
		{name: "logits range", stage: golden.Logits, faults: "stage=logits,pos>=2,ch=100..199,scale=1.1", n: 10,
			pos:  golden.PositionShape{Pattern: golden.PositionsFrom, First: 2, Last: 9},
			ch:   golden.ChannelShape{Pattern: golden.ChannelsRange, Lo: 100, Hi: 199},
			kind: golden.KindScale, number: 1.1, hyp: golden.HypothesisMemoryLayout},
		{name: "mixed", stage: golden.MLPOut, faults: "stage=mlp_out,pos=10,scale=1.5;stage=mlp_out,pos=20,zero", n: 30,
			pos: golden.PositionShape{Pattern: golden.PositionsScattered, First: 10, Last: 20}, ch: all,
			kind: golden.KindMixed, hyp: golden.HypothesisNone, line: "mixed: uniform scale x1.5 at 1 position; zeros (a missing write) at 1 position"},
		{name: "scale varying by position", stage: golden.AttnOut, n: 30,
			edit: func(cand, _ [][]float32) {
				for p := 10; p < 30; p++ {
					for i := range cand[p] {
						cand[p][i] *= 1 + float32(p)/100
					}
				}
			},
			pos: golden.PositionShape{Pattern: golden.PositionsFrom, First: 10, Last: 29}, ch: all,
			kind: golden.KindMixed, hyp: golden.HypothesisNone, line: "kind: mixed: scale from 1.1 to 1.29 at 20 positions"},
		{name: "swap", stage: golden.ResidualPostMLP, n: 30,
			edit: func(cand, _ [][]float32) { cand[10], cand[20] = cand[20], cand[10] },
			pos:  golden.PositionShape{Pattern: golden.PositionsScattered, First: 10, Last: 20}, ch: all,
			kind: golden.KindSwap, hyp: golden.HypothesisMemoryLayout, line: "rows swapped between positions (10<->20)"},
		{name: "unrecognised", stage: golden.MLPOut, n: 30,
			edit: func(cand, _ [][]float32) {
				rng := rand.New(rand.NewPCG(9, 9))
				for _, row := range cand[10:] {
					for i := range row {
						row[i] += float32(rng.NormFloat64())
					}
				}
			},
			pos: golden.PositionShape{Pattern: golden.PositionsFrom, First: 10, Last: 29}, ch: all,
			kind: golden.KindUnrecognised, hyp: golden.HypothesisNone, line: "kind: unrecognised: median relative error"},
	}
}

// synthRows makes n rows of width w and the candidate's copy, with relative noise of
// about noise in every element when noise > 0 (the noise a cross-device comparison has).
func synthRows(rng *rand.Rand, n, w int, noise float64) (cand, base [][]float32) {
	for p := 0; p < n; p++ {
		b, c := make([]float32, w), make([]float32, w)
		for i := range b {
			b[i] = float32(rng.NormFloat64())
			c[i] = b[i]
			if noise > 0 {
				c[i] = float32(float64(b[i]) * (1 + noise*(2*rng.Float64()-1)))
			}
		}
		cand, base = append(cand, c), append(base, b)
	}
	return cand, base
}

func plant(t *testing.T, st golden.Stage, spec string, cand [][]float32) {
	t.Helper()
	faults, err := engine.ParseFaults(spec)
	if err != nil {
		t.Fatal(err)
	}
	if faults, err = engine.ResolveFaults(faults, synthHeadDim, synthWidth); err != nil {
		t.Fatal(err)
	}
	tap := &engine.Tap{Faults: faults}
	for p, row := range cand {
		tap.Rows(st, 0, p, len(row), row)
	}
}

// TestDiagnoseShape plants each kind, position and channel pattern in random rows, without
// and with the background noise of a cross-device comparison (1e-6 relative everywhere,
// quiet rows of the stage before carrying the same), and checks what the diagnosis says.
func TestDiagnoseShape(t *testing.T) {
	for _, noise := range []float64{0, 1e-6} {
		for ci, c := range synthCases() {
			name := c.name
			if noise > 0 {
				name += "/noise"
			}
			t.Run(name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(ci), 77))
				w := synthWidth(c.stage)
				cand, base := synthRows(rng, c.n, w, noise)
				if c.faults != "" {
					plant(t, c.stage, c.faults, cand)
				}
				if c.edit != nil {
					c.edit(cand, base)
				}
				qc, qb := synthRows(rng, 4, 256, noise)
				in := golden.ShapeInput{Stage: c.stage, Layer: 0, Origin: c.pos.First, HeadDim: synthHeadDim,
					NPrompt: c.nPrompt, Pos: seq(c.n), Cand: cand, Base: base, QuietCand: qc, QuietBase: qb}
				if in.NPrompt == 0 {
					in.NPrompt = c.n
				}
				sh, err := golden.DiagnoseShape(in)
				if err != nil {
					t.Fatal(err)
				}
				checkShape(t, c, sh)
			})
		}
	}
}

func checkShape(t *testing.T, c synthCase, sh *golden.Shape) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("line: %s", sh.Line())
		}
	}()
	p := sh.Positions
	gotPos := golden.PositionShape{Pattern: p.Pattern, First: p.First, Last: p.Last, Period: p.Period, Phase: p.Phase, Decode: p.Decode, Ends: p.Ends}
	if diff := cmp.Diff(c.pos, gotPos); diff != "" {
		t.Errorf("positions (-want +got):\n%s", diff)
	}
	ch := golden.ChannelShape{Pattern: sh.Channels.Pattern, Heads: sh.Channels.Heads}
	want := golden.ChannelShape{Pattern: c.ch.Pattern, Heads: c.ch.Heads}
	if c.ch.Pattern != golden.ChannelsAll {
		ch.Lo, ch.Hi, want.Lo, want.Hi = sh.Channels.Lo, sh.Channels.Hi, c.ch.Lo, c.ch.Hi
	}
	if diff := cmp.Diff(want, ch); diff != "" {
		t.Errorf("channels (-want +got):\n%s", diff)
	}
	if sh.Kind.Name != c.kind {
		t.Errorf("kind %s, want %s (%+v)", sh.Kind.Name, c.kind, sh.Kind)
	}
	if c.number != 0 {
		got := map[golden.KindName]float64{golden.KindScale: sh.Kind.Factor, golden.KindAffine: sh.Kind.Factor,
			golden.KindOffset: sh.Kind.Offset, golden.KindShift: float64(sh.Kind.Shift)}[c.kind]
		if math.Abs(got-c.number) > 1e-5*math.Abs(c.number) {
			t.Errorf("number %v, want %v", got, c.number)
		}
	}
	if c.offset != 0 && math.Abs(sh.Kind.Offset-c.offset) > 1e-5 {
		t.Errorf("offset %v, want %v", sh.Kind.Offset, c.offset)
	}
	if sh.Hypothesis != c.hyp {
		t.Errorf("hypothesis %s, want %s (%s)", sh.Hypothesis, c.hyp, sh.Evidence)
	}
	if c.line != "" && !strings.Contains(sh.Line(), c.line) {
		t.Errorf("line %q does not hold %q", sh.Line(), c.line)
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// TestDiagnoseShapeNoiseOnly: differences at the ulp level alone are ulp-level noise; under
// the background of a cross-device comparison a small scale stands out and the noise is
// left out.
func TestDiagnoseShapeNoiseOnly(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	_, base := synthRows(rng, 30, 256, 0)
	cand, _ := synthRows(rng, 30, 256, 0)
	for p := range cand {
		copy(cand[p], base[p])
		if p >= 12 { // an accumulation order changed from position 12: a few ulps
			for i := range cand[p] {
				if rng.IntN(3) == 0 {
					cand[p][i] = math.Nextafter32(cand[p][i], float32(math.Inf(2*rng.IntN(2)-1)))
				}
			}
		}
	}
	sh, err := golden.DiagnoseShape(golden.ShapeInput{Stage: golden.AttnOut, Origin: 12, HeadDim: 32, NPrompt: 30, Pos: seq(30), Cand: cand, Base: base})
	if err != nil {
		t.Fatal(err)
	}
	if sh.Kind.Name != golden.KindNoise || sh.Kind.ULPMax != 1 || sh.Hypothesis != golden.HypothesisPrecision ||
		sh.Positions.Pattern != golden.PositionsFrom || sh.Positions.First != 12 || sh.Channels.Pattern != golden.ChannelsAll {
		t.Errorf("ulp noise from 12: %s", sh.Line())
	}
	if !strings.Contains(sh.Line(), "kind: ulp-level noise (median 1 ulp, max 1)") {
		t.Errorf("line %q", sh.Line())
	}

	// Noise after RoPE that grows with position: the angles.
	cand2, base2 := synthRows(rng, 64, 64, 0)
	for p := range cand2 {
		for i := range cand2[p] {
			u := 1 + float64(p)*1e-7*float64(1-2*rng.IntN(2))
			cand2[p][i] = float32(float64(base2[p][i]) * u)
		}
	}
	sh, err = golden.DiagnoseShape(golden.ShapeInput{Stage: golden.KPostRope, Origin: 1, HeadDim: 32, NPrompt: 64, Pos: seq(64), Cand: cand2, Base: base2})
	if err != nil {
		t.Fatal(err)
	}
	if sh.Kind.Name != golden.KindNoise || sh.Hypothesis != golden.HypothesisPositionEncoding || !strings.Contains(sh.Evidence, "growing") {
		t.Errorf("noise growing with position after RoPE: %s", sh.Line())
	}

	// Identical rows have no shape.
	if _, err := golden.DiagnoseShape(golden.ShapeInput{Stage: golden.AttnOut, HeadDim: 32, Pos: seq(30), Cand: base, Base: base}); err == nil ||
		!strings.Contains(err.Error(), "equal the baseline's bit for bit") {
		t.Errorf("identical rows: %v", err)
	}
}

func TestDiagnoseShapeRejectsBadInput(t *testing.T) {
	row := []float32{1, 2}
	for _, tt := range []struct {
		in   golden.ShapeInput
		want string
	}{
		{golden.ShapeInput{HeadDim: 2}, "no rows"},
		{golden.ShapeInput{HeadDim: 2, Pos: []int{0}, Cand: [][]float32{row}}, "1 positions but 1 candidate and 0 baseline rows"},
		{golden.ShapeInput{HeadDim: -1, Pos: []int{0}, Cand: [][]float32{row}, Base: [][]float32{row}}, "head_dim -1"},
		{golden.ShapeInput{HeadDim: 2, Pos: []int{1, 1}, Cand: [][]float32{row, row}, Base: [][]float32{row, row}}, "not ascending"},
		{golden.ShapeInput{HeadDim: 2, Pos: []int{0, 1}, Cand: [][]float32{row, {1}}, Base: [][]float32{row, row}}, "position 1: rows of 1 and 2 elements"},
	} {
		if _, err := golden.DiagnoseShape(tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DiagnoseShape: %v, want %q", err, tt.want)
		}
	}
}

// BenchmarkDiagnoseShape diagnoses a TinyLlama-sized stage: 1658 positions of width 2048
// (32 heads of 64), one head scaled from position 826, with cross-device noise.
func BenchmarkDiagnoseShape(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	cand, base := synthRows(rng, 1658, 2048, 1e-6)
	for p := 826; p < len(cand); p++ {
		for i := 3 * 64; i < 4*64; i++ {
			cand[p][i] *= 1.01
		}
	}
	qc, qb := synthRows(rng, 827, 2048, 1e-6)
	in := golden.ShapeInput{Stage: golden.AttnCtx, Layer: 5, Origin: 826, HeadDim: 64, NPrompt: 1653, Pos: seq(1658),
		Cand: cand, Base: base, QuietCand: qc, QuietBase: qb}
	for b.Loop() {
		sh, err := golden.DiagnoseShape(in)
		if err != nil || sh.Kind.Name != golden.KindScale || sh.Channels.Pattern != golden.ChannelsHeads {
			b.Fatalf("%v %v", sh, err)
		}
	}
}
