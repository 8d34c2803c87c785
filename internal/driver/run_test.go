package driver_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/model"
	_ "github.com/gretabisect/gretabisect/internal/ref" // the "cpu" backend
	_ "github.com/gretabisect/gretabisect/internal/testutil"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// fakeEngine "predicts" token+1: its logits are one-hot there. It traces embed_out as
// (token, pos) and the logits of every position, and logs its calls.
type fakeEngine struct {
	cfg   model.Config
	calls []string
}

func (f *fakeEngine) Forward(tokens []int32, pos0 int, tap *engine.Tap) ([]float32, error) {
	f.calls = append(f.calls, fmt.Sprintf("%d+%d", pos0, len(tokens)))
	var logits []float32
	for i, tok := range tokens {
		tap.Rows(golden.EmbedOut, -1, pos0+i, 2, []float32{float32(tok), float32(pos0 + i)})
		logits = make([]float32, f.cfg.Vocab)
		logits[(int(tok)+1)%f.cfg.Vocab] = 1
		tap.Rows(golden.Logits, f.cfg.NLayer, pos0+i, len(logits), logits)
	}
	return logits, nil
}
func (f *fakeEngine) Reset()         { f.calls = append(f.calls, "reset") }
func (f *fakeEngine) Device() string { return "fake" }
func (f *fakeEngine) Close() error   { return nil }

var fakeModel = &model.Model{Model: engine.Model{Config: model.Config{NLayer: 2, Vocab: 10, CtxLen: 8}}}

func TestRunRoutes(t *testing.T) {
	plan := trace.Plan{AllPositions: true, Prefill: true, Decode: true, MaxNewTokens: 3}
	type rec struct {
		Tensor, Phase, Route string
		Pos, Tok, Layer      int
	}
	tests := []struct {
		route string
		calls []string
	}{
		{golden.RoutePrefill, []string{"reset", "0+3", "3+1", "4+1", "5+1"}},
		{golden.RouteDecode, []string{"reset", "0+1", "1+1", "2+1", "3+1", "4+1", "5+1"}},
	}
	for _, tc := range tests {
		t.Run(tc.route, func(t *testing.T) {
			e := &fakeEngine{cfg: fakeModel.Config}
			var progress []string
			res, err := driver.Run(e, fakeModel, driver.Request{
				PromptID: "p", Tokens: []int32{1, 5, 2}, Plan: plan, Route: tc.route,
				Progress: func(done, total int) { progress = append(progress, fmt.Sprintf("%d/%d", done, total)) },
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.calls, e.calls); diff != "" {
				t.Errorf("engine calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]int32{3, 4, 5}, res.Generated); diff != "" {
				t.Errorf("generated (-want +got):\n%s", diff)
			}
			if n := len(progress); n == 0 || progress[n-1] != "6/6" {
				t.Errorf("progress %v, want it to end at 6/6", progress)
			}
			var got []rec
			for _, r := range res.Records {
				got = append(got, rec{r.TensorName, r.Phase, r.Route, r.PosID, r.TokenID, r.Layer})
				if r.PosID != r.LogicalTokIdx {
					t.Errorf("pos %d: logical_tok_idx %d", r.PosID, r.LogicalTokIdx)
				}
			}
			pr := tc.route
			want := []rec{
				{"embed_out", "prefill", pr, 0, 1, -1}, {"embed_out", "prefill", pr, 1, 5, -1},
				{"embed_out", "prefill_last", pr, 2, 2, -1}, {"embed_out", "decode", "decode", 3, 3, -1},
				{"embed_out", "decode", "decode", 4, 4, -1}, {"embed_out", "decode", "decode", 5, 5, -1},
				{"logits", "prefill", pr, 0, 1, 2}, {"logits", "prefill", pr, 1, 5, 2},
				{"logits", "prefill_last", pr, 2, 2, 2}, {"logits", "decode", "decode", 3, 3, 2},
				{"logits", "decode", "decode", 4, 4, 2}, {"logits", "decode", "decode", 5, 5, 2},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if top := res.Records[len(res.Records)-1].Top5Tokens; len(top) != 5 || top[0] != 6 {
				t.Errorf("top5 of the last logits %v, want 6 first", top)
			}
		})
	}
}

// TestRunFaultSteersGeneration checks that faults reach the engine through the tap: a
// negated logits row makes greedy decoding pick the lowest id of the zeros.
func TestRunFaultSteersGeneration(t *testing.T) {
	e := &fakeEngine{cfg: fakeModel.Config}
	res, err := driver.Run(e, fakeModel, driver.Request{
		PromptID: "p", Tokens: []int32{1, 5}, Plan: trace.Plan{MaxNewTokens: 2},
		Faults: []engine.Fault{{Stage: golden.Logits, Layer: engine.AnyLayer, PosMin: 1, PosMax: -1, Scale: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int32{0, 0}, res.Generated); diff != "" {
		t.Errorf("generated (-want +got):\n%s", diff)
	}
	if len(res.Records) != 0 {
		t.Errorf("%d records from an empty plan", len(res.Records))
	}
}

// failingEngine is fakeEngine until a forward pass at position failAt, which fails the way
// a GPU kernel fault does.
type failingEngine struct {
	fakeEngine
	failAt int
}

func (f *failingEngine) Forward(tokens []int32, pos0 int, tap *engine.Tap) ([]float32, error) {
	if pos0 == f.failAt {
		return nil, errors.New("attention_decode layer 1: launch failed: an illegal memory access was encountered")
	}
	return f.fakeEngine.Forward(tokens, pos0, tap)
}

// TestRunKeepsRecordsOfAFailedRun checks that a run whose engine fails returns what it
// recorded before, in the order it was computed (each generated token after the prompt),
// with a *golden.Crash that carries the engine's error.
func TestRunKeepsRecordsOfAFailedRun(t *testing.T) {
	e := &failingEngine{fakeEngine: fakeEngine{cfg: fakeModel.Config}, failAt: 4}
	plan := trace.Plan{AllPositions: true, Prefill: true, Decode: true, MaxNewTokens: 3}
	res, err := driver.Run(e, fakeModel, driver.Request{PromptID: "p", Tokens: []int32{1, 5, 2}, Plan: plan})
	var crash *golden.Crash
	if !errors.As(err, &crash) || res == nil {
		t.Fatalf("error %v, result %v: want a crash with a result", err, res)
	}
	want := `engine: prompt "p" on fake: decode at position 4: attention_decode layer 1: launch failed: an illegal memory access was encountered`
	if crash.Reason != want {
		t.Errorf("reason %q, want %q", crash.Reason, want)
	}
	var got []string
	for _, r := range res.Records {
		got = append(got, fmt.Sprintf("%s@%d", r.TensorName, r.PosID))
	}
	order := []string{"embed_out@0", "embed_out@1", "embed_out@2", "logits@0", "logits@1", "logits@2", "embed_out@3", "logits@3"}
	if diff := cmp.Diff(order, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

func TestRunRejectsBadRequests(t *testing.T) {
	tests := []struct {
		name string
		req  driver.Request
		want string
	}{
		{"empty prompt", driver.Request{PromptID: "p"}, `prompt "p": no tokens`},
		{"token out of vocabulary", driver.Request{PromptID: "p", Tokens: []int32{1, 10}},
			`prompt "p": token 10 at position 1 is outside the vocabulary (0..9)`},
		{"negative token", driver.Request{PromptID: "p", Tokens: []int32{-1}}, "token -1 at position 0"},
		{"context overflow", driver.Request{PromptID: "p", Tokens: []int32{1, 2, 3, 4}, Plan: trace.Plan{MaxNewTokens: 5}},
			"4 tokens + 5 new tokens exceed the context length 8"},
		{"negative new tokens", driver.Request{PromptID: "p", Tokens: []int32{1}, Plan: trace.Plan{MaxNewTokens: -1}},
			"max new tokens -1 is negative"},
		{"unknown route", driver.Request{PromptID: "p", Tokens: []int32{1}, Route: "sideways"}, `unknown route "sideways"`},
		{"fault at a missing layer", driver.Request{PromptID: "p", Tokens: []int32{1},
			Faults: []engine.Fault{{Stage: golden.AttnOut, Layer: 2, PosMax: -1, Scale: 2}}},
			"fault 1 (stage=attn_out,layer=2,scale=2): layer 2 is outside the model's 2 layers (0..1)"},
		{"fault outside the stage's channels", driver.Request{PromptID: "p", Tokens: []int32{1},
			Faults: []engine.Fault{{Stage: golden.Logits, Layer: engine.AnyLayer, PosMax: -1, ChLo: 8, ChLen: 4, Kind: engine.Zero}}},
			"fault 1 (stage=logits,ch=8..11,zero): channels 8..11 outside the 10 channels of logits"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &fakeEngine{cfg: fakeModel.Config}
			res, err := driver.Run(e, fakeModel, tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) || res != nil {
				t.Fatalf("error %v, result %v: want no result and an error containing %q", err, res, tc.want)
			}
			if len(e.calls) != 0 {
				t.Errorf("engine called %v for a bad request", e.calls)
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	engine.Register("fake-test", func(m *engine.Model) (engine.Engine, error) { return &fakeEngine{cfg: m.Config}, nil })
	e, err := engine.Open("fake-test", &fakeModel.Model)
	if err != nil || e.Device() != "fake" {
		t.Fatalf("Open(fake-test) = %v, %v", e, err)
	}
	_, err = engine.Open("nope", &fakeModel.Model)
	if err == nil || !strings.Contains(err.Error(), `unknown backend "nope" (known: `) || !strings.Contains(err.Error(), "fake-test") {
		t.Errorf("Open(nope) error %v, want it to list the known backends", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	engine.Register("fake-test", nil)
}

// chunkyEngine reports progress inside Forward, as the CPU reference does per chunk.
type chunkyEngine struct {
	fakeEngine
	progress func(int)
}

func (c *chunkyEngine) SetProgress(f func(int)) { c.progress = f }

func (c *chunkyEngine) Forward(tokens []int32, pos0 int, tap *engine.Tap) ([]float32, error) {
	for i := 1; i < len(tokens); i++ {
		if c.progress != nil {
			c.progress(pos0 + i)
		}
	}
	return c.fakeEngine.Forward(tokens, pos0, tap)
}

func TestRunReportsProgressInsideForward(t *testing.T) {
	e := &chunkyEngine{fakeEngine: fakeEngine{cfg: fakeModel.Config}}
	var got []int
	_, err := driver.Run(e, fakeModel, driver.Request{PromptID: "p", Tokens: []int32{1, 2, 3},
		Plan: trace.Plan{MaxNewTokens: 1}, Progress: func(done, total int) { got = append(got, done) }})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{1, 2, 3, 4}, got); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	if e.progress != nil {
		t.Error("Run left its progress callback installed")
	}
}

// sketchingEngine hands its logits over with their sketches, as a device backend does.
type sketchingEngine struct{ fakeEngine }

func (s *sketchingEngine) Forward(tokens []int32, pos0 int, tap *engine.Tap) ([]float32, error) {
	var logits []float32
	for i, tok := range tokens {
		tap.Rows(golden.EmbedOut, -1, pos0+i, 2, []float32{float32(tok), float32(pos0 + i)})
		logits = make([]float32, s.cfg.Vocab)
		logits[(int(tok)+1)%s.cfg.Vocab] = 1
		tap.RecordSketched(golden.Logits, s.cfg.NLayer, pos0+i, logits, golden.NewSketch(logits))
	}
	return logits, nil
}

// TestRunKeepsRows: Keep receives the rows it selects and Want accepts, beyond the plan,
// while the plan's records stay exactly what the plan alone gives, whether the engine hands
// rows over plain or with sketches.
func TestRunKeepsRows(t *testing.T) {
	for _, sketching := range []bool{false, true} {
		t.Run(fmt.Sprintf("sketching=%v", sketching), func(t *testing.T) { testRunKeepsRows(t, sketching) })
	}
}

func testRunKeepsRows(t *testing.T, sketching bool) {
	plan := trace.Plan{Positions: []int{1}, Prefill: true, Stages: []golden.Stage{golden.Logits}, MaxNewTokens: 1}
	run := func(keep *driver.Keep) []golden.Record {
		var e engine.Engine = &fakeEngine{cfg: fakeModel.Config}
		if sketching {
			e = &sketchingEngine{fakeEngine{cfg: fakeModel.Config}}
		}
		res, err := driver.Run(e, fakeModel, driver.Request{PromptID: "p", Tokens: []int32{1, 5, 2}, Plan: plan, Keep: keep})
		if err != nil {
			t.Fatal(err)
		}
		return res.Records
	}
	var kept []string
	keep := &driver.Keep{
		Sel:  engine.NewSelection([]golden.Stage{golden.EmbedOut, golden.Logits}, nil, 2, []int{0, 2, 3}, 4),
		Want: func(st golden.Stage, layer, pos int) bool { return st == golden.EmbedOut || pos == 3 },
		Put: func(st golden.Stage, layer, pos int, row []float32) {
			kept = append(kept, fmt.Sprintf("%s L%d p%d %v", st, layer, pos, row[:2]))
		},
	}
	with, without := run(keep), run(nil)
	want := []string{"embed_out L-1 p0 [1 0]", "embed_out L-1 p2 [2 2]", "embed_out L-1 p3 [3 3]", "logits L2 p3 [0 0]"}
	if diff := cmp.Diff(want, kept); diff != "" {
		t.Errorf("kept rows (-want +got):\n%s", diff)
	}
	clean := func(recs []golden.Record) []golden.Record {
		for i := range recs {
			recs[i].Timestamp = ""
		}
		return recs
	}
	if diff := cmp.Diff(clean(without), clean(with)); diff != "" || len(with) != 1 {
		t.Errorf("records with Keep differ from the plan's (-without +with):\n%s", diff)
	}
}

// TestSpanPart: a backend's chunks of a span cover its positions and rows in order, and
// only the last wants the last logits.
func TestSpanPart(t *testing.T) {
	rows := []float32{0, 0, 1, 1, 2, 2, 3, 3, 4, 4}
	s := driver.Span{Rows: rows, Pos0: 7, N: 5, Lo: 1, Hi: 2, WantLast: true}
	type part struct {
		Pos0, N  int
		Rows     []float32
		WantLast bool
	}
	var got []part
	for off := 0; off < s.N; off += 2 {
		p := s.Part(off, min(2, s.N-off), 2)
		if p.Lo != 1 || p.Hi != 2 || p.Tokens != nil {
			t.Errorf("part %d: layers %d..%d, tokens %v", off, p.Lo, p.Hi, p.Tokens)
		}
		got = append(got, part{p.Pos0, p.N, p.Rows, p.WantLast})
	}
	want := []part{{7, 2, []float32{0, 0, 1, 1}, false}, {9, 2, []float32{2, 2, 3, 3}, false}, {11, 1, []float32{4, 4}, true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parts (-want +got):\n%s", diff)
	}
	tok := driver.Span{Tokens: []int32{5, 6, 7}, N: 3}.Part(1, 2, 4)
	if diff := cmp.Diff([]int32{6, 7}, tok.Tokens); diff != "" || tok.Pos0 != 1 || tok.WantLast || tok.Rows != nil {
		t.Errorf("part of tokens: %+v", tok)
	}
}

// TestRunFaultsAgreeOnRoutes plants every kind of fault in the CPU reference running the tiny
// model, past its 64-token prefill chunk: the prefill route (chunks of 64) and the decode
// route (one token at a time) must record the same bits, and every fault must change them.
func TestRunFaultsAgreeOnRoutes(t *testing.T) {
	m, err := model.Open(model.TinySpec)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.Open("cpu", &m.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tokens := make([]int32, 70)
	for i := range tokens {
		tokens[i] = int32(3 + i*7%(m.Config.Vocab-3))
	}
	plan := trace.Plan{Layers: []int{1}, AllPositions: true, Prefill: true, Decode: true, MaxNewTokens: 2,
		Stages: []golden.Stage{golden.V, golden.AttnCtx, golden.MLPOut}}
	hashes := func(route, spec string) map[golden.Key]string {
		faults, err := engine.ParseFaults(spec)
		if err != nil {
			t.Fatal(err)
		}
		res, err := driver.Run(e, m, driver.Request{PromptID: "p", Tokens: tokens, Plan: plan, Faults: faults, Route: route})
		if err != nil {
			t.Fatal(err)
		}
		out := map[golden.Key]string{}
		for _, r := range res.Records {
			out[golden.KeyOf(r)] = r.Hash
		}
		return out
	}
	clean := hashes(golden.RoutePrefill, "")
	for _, spec := range []string{
		"stage=v,layer=1,pos>=60,shift=5,head=1",
		"stage=v,layer=1,every=7,phase=2,ch=3..9,zero",
		"stage=attn_ctx,layer=1,head=2..3,pos=10..68,round=bf16",
		"stage=mlp_out,layer=1,round=f16",
		"stage=mlp_out,layer=1,pos=66,ch=5,nan",
		"stage=attn_ctx,layer=1,every=64,sign",
		"stage=v,layer=1,pos>=63,inf,ch=0",
		"stage=mlp_out,layer=1,scale=1.001,add=0.5",
	} {
		pre, dec := hashes(golden.RoutePrefill, spec), hashes(golden.RouteDecode, spec)
		if diff := cmp.Diff(pre, dec); diff != "" {
			t.Errorf("%s: the routes differ (-prefill +decode):\n%s", spec, diff)
		}
		if cmp.Equal(pre, clean) {
			t.Errorf("%s: nothing changed", spec)
		}
	}
}
