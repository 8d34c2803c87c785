// Package policytest tests the policies that judge a backend by its own error (replay, and
// per operation for an external engine) against the CPU reference, through gretatest's
// public API: calibration, clean runs and the sensitivity matrix. They replay every layer of
// long prompts many times, so they have a test binary, and go test's time budget, of their
// own.
package policytest

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/ownerr"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/ref"
	"github.com/gretabisect/gretabisect/internal/testutil"
	"github.com/gretabisect/gretabisect/internal/trace"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveFakeEngine()
	os.Exit(code)
}

// recorder is a gretatest.TB that keeps what Bisect reports.
type recorder struct {
	name         string
	errors, logs []string
}

func (r *recorder) Helper()      {}
func (r *recorder) Name() string { return r.name }
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

// Positions of the 50-token prompt (the first 50 tokens of p6_len_16) under the default plan:
// windows 0..15, 17..32 and 34..49 are traced, 16 and 33 are not; 50..52 are generated.
const (
	m50Len      = 50
	m50Early    = 2
	m50Untraced = 16
	m50Decode   = 51
	p6Len16Crit = 826
	p6Len32Crit = 1652
)

// tinyPrompts opens the tiny model and names the prompts: m50 and the standard prompts.
func tinyPrompts(t *testing.T) (*model.Model, map[string]gretatest.Prompt) {
	t.Helper()
	m, err := model.Open(model.TinySpec)
	if err != nil {
		t.Fatal(err)
	}
	p16, err := prompts.Standard(prompts.P6Len16, m.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]gretatest.Prompt{"m50": gretatest.TokenPrompt("m50", p16.Tokens[:m50Len]...)}
	for _, p := range gretatest.StandardPrompts() {
		byID[p.ID] = p
	}
	return m, byID
}

// candidate is the in-repository backend that is correct but rounds differently from the
// reference: another device, as far as the reference can tell, for the replay policy in CI.
const candidate = ref.F64AccName

// TestNoiseFloors calibrates the CPU candidate on the tiny model over the standard prompts
// and checks that the committed golden/testdata/cpu-f64acc/tiny/noise.json holds exactly
// those floors (a deterministic backend calibrates to the same bytes); -update re-records it.
func TestNoiseFloors(t *testing.T) {
	if testing.Short() {
		t.Skip("replays every layer of the three standard prompts")
	}
	root := filepath.Join("..", "..", "golden", "testdata")
	committed := ownerr.NoisePath(root, candidate, model.TinySpec)
	dir := t.TempDir()
	if testutil.Update() {
		dir = root
	}
	tb := &recorder{name: "TestNoiseFloors"}
	rep := gretatest.Bisect(tb, gretatest.StandardPrompts(), gretatest.Backend(candidate), gretatest.Calibrate(), gretatest.GoldenDir(dir), gretatest.Share(replayCache), gretatest.NoArtifacts(),
		gretatest.Env(func(string) string { return "" }))
	if len(tb.errors) > 0 || rep.Calibration == nil {
		t.Fatalf("calibration: %q", tb.errors)
	}
	t.Logf("%s", rep.Calibration.Table)
	for _, m := range rep.Calibration.Margins {
		// The candidate's own errors are float32 rounding: well below the default floors.
		if !(m.Ratio < 1) {
			t.Errorf("stage %s: worst own error %.3g is %.3g x its default floor", m.Stage, m.Worst.Own.RelL2, m.Ratio)
		}
	}
	got, err := os.ReadFile(rep.Calibration.Path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(committed)
	if err != nil {
		t.Fatalf("%v; record it with: go test ./gretatest -run TestNoiseFloors -update", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("calibration differs from %s; re-record it with: go test ./gretatest -run TestNoiseFloors -update", committed)
	}
}

// replayCache shares the reference's runs between the replay tests.
var replayCache = gretatest.NewCache()

// TestReplayPolicyClean runs the CPU candidate against the CPU reference's goldens: the
// replay policy is the default (the candidate replays layers, the goldens are another
// device's), every layer's own error is measured, and none exceeds its calibrated floor.
func TestReplayPolicyClean(t *testing.T) {
	ps := gretatest.StandardPrompts()
	if testing.Short() {
		ps = ps[:1]
	}
	tb := &recorder{name: "TestReplayPolicyClean"}
	rep := gretatest.Bisect(tb, ps, gretatest.Backend(candidate), gretatest.Share(replayCache), gretatest.NoArtifacts(), gretatest.Env(func(string) string { return "" }), gretatest.Update(false))
	if len(tb.errors) > 0 {
		t.Fatalf("clean candidate reported:\n%s", strings.Join(tb.errors, "\n"))
	}
	m, err := model.Open(model.TinySpec)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range rep.Prompts {
		own := pr.Result.Own
		if pr.Policy != golden.Replay.Name || own == nil || pr.Line != "" {
			t.Fatalf("%s: policy %q, own %v, line %q", pr.PromptID, pr.Policy, own != nil, pr.Line)
		}
		layers := map[int]bool{}
		worst := 0.0
		for _, r := range own.Records {
			if r.Missing != "" {
				t.Errorf("%s: %v: own error unknown (%s)", pr.PromptID, r.Key, r.Missing)
				continue
			}
			layers[r.Layer] = true
			worst = max(worst, r.Own.Ratio())
		}
		// Every layer, embed_out and logits; the floors were calibrated on these prompts.
		if len(layers) != m.Config.NLayer+2 || !(worst <= 1) {
			t.Errorf("%s: own errors of %d layers (want %d), worst %.3g x its floor (want <= 1)", pr.PromptID, len(layers), m.Config.NLayer+2, worst)
		}
		t.Logf("%s: %d own errors, worst %.3g x its floor", pr.PromptID, len(own.Records), worst)
	}
}

// sensitivityCase plants one small fault in the CPU candidate.
type sensitivityCase struct {
	prompt string
	stage  golden.Stage
	layer  int
	pos    int
	add    bool // an additive fault of 1e-4 x the reference row's RMS; else a scale of 1.0001
}

func (c sensitivityCase) String() string {
	kind := "scale"
	if c.add {
		kind = "add"
	}
	return fmt.Sprintf("%s/%s/layer%d/pos%d/%s", c.prompt, c.stage, c.layer, c.pos, kind)
}

// Faults of the sensitivity matrix: a scale of 1 + 1e-4, and an addition of 1e-4 times the
// RMS of the reference's row at the faulted position (so the additive fault has the same
// relative size in every stage, whatever its magnitude: a residual of RMS 1 and logits of
// RMS 3 alike).
const (
	sensitivityScale = 1.0001
	sensitivityAdd   = 1e-4
)

// sensitivityCases covers every stage with a scale and an additive fault, at traced (0, 1,
// 2, 4, 8) and untraced (3, 5, 6, 7, 9) layers, at early, untraced and decode positions of
// the 50-token prompt, and at 826 and 1652 of the standard prompts in four cases (each of
// those runs the candidate over the whole long prompt several times). -short keeps a
// quarter of the 50-token cases.
func sensitivityCases(short bool) []sensitivityCase {
	traced, untraced := trace.DefaultLayers, []int{3, 5, 6, 7, 9}
	var cases []sensitivityCase
	for i, si := range golden.Stages() {
		st := si.Stage
		t, u := traced[i%len(traced)], untraced[i%len(untraced)]
		untracedPos := m50Untraced
		if st == golden.Logits { // logits are computed only at the rows a run asks for
			untracedPos = m50Decode - 1
		}
		cases = append(cases,
			sensitivityCase{prompt: "m50", stage: st, layer: t, pos: m50Early},
			sensitivityCase{prompt: "m50", stage: st, layer: u, pos: m50Early, add: true},
			sensitivityCase{prompt: "m50", stage: st, layer: u, pos: untracedPos, add: i%2 == 0},
			sensitivityCase{prompt: "m50", stage: st, layer: t, pos: m50Decode, add: i%2 == 1})
	}
	if short {
		var sub []sensitivityCase
		for i, c := range cases {
			if i%8 == i/8%4 { // each of the four kinds of case in turn, every other stage
				sub = append(sub, c)
			}
		}
		return sub
	}
	return append(cases,
		sensitivityCase{prompt: prompts.P6Len16, stage: golden.KPostRope, layer: 3, pos: p6Len16Crit},
		sensitivityCase{prompt: prompts.P6Len16, stage: golden.MLPOut, layer: 4, pos: p6Len16Crit, add: true},
		sensitivityCase{prompt: prompts.P6Len32, stage: golden.AttnCtx, layer: 8, pos: p6Len32Crit, add: true},
		sensitivityCase{prompt: prompts.P6Len32, stage: golden.V, layer: 5, pos: p6Len32Crit},
	)
}

// TestReplaySensitivity plants faults of relative size 1e-4 in the CPU candidate, compared
// with the CPU reference (its goldens for the standard prompts, a live run for the 50-token
// prompt): the replay policy must name exactly the planted stage, layer, position and
// category in every case. The tolerance policy (rel_l2 1e-3) sees none of these faults.
func TestReplaySensitivity(t *testing.T) {
	m, byID := tinyPrompts(t)
	cases := sensitivityCases(testing.Short())
	if len(cases) < 60 && !testing.Short() {
		t.Fatalf("%d cases, want at least 60", len(cases))
	}
	start := time.Now()
	var mu sync.Mutex
	posRuns := 0
	t.Cleanup(func() {
		t.Logf("%d cases in %v, %d with a replay of every position", len(cases), time.Since(start).Round(time.Millisecond), posRuns)
	})
	for _, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			p := byID[c.prompt]
			f := engine.Fault{Stage: c.stage, Layer: c.layer, PosMin: c.pos, PosMax: -1, Scale: sensitivityScale}
			if c.add {
				f.Scale, f.Add = 1, float32(sensitivityAdd*referenceRMS(t, m, p, c.stage, c.layer, c.pos))
			}
			opts := []gretatest.Option{gretatest.LoadedModel(model.TinySpec, m), gretatest.Backend(candidate), gretatest.Inject(f), gretatest.Share(replayCache),
				gretatest.NoArtifacts(), gretatest.Env(func(string) string { return "" }), gretatest.Update(false)}
			if c.prompt == "m50" {
				opts = append(opts, gretatest.MaxNewTokens(3), gretatest.Baseline(), gretatest.Reference("cpu"))
			}
			tb := &recorder{name: "TestReplaySensitivity"}
			rep := gretatest.Bisect(tb, []gretatest.Prompt{p}, opts...)
			pr := rep.Prompts[0]
			want := fmt.Sprintf("%s: FIRST_FAIL pos=%d layer=%d tensor=%s category=%s (", c.prompt, c.pos,
				golden.LayerOf(c.stage, c.layer, m.Config.NLayer), c.stage, c.stage.Category())
			if pr.Policy != golden.Replay.Name || !strings.HasPrefix(pr.Line, want) || !strings.Contains(pr.Line, ", own rel_l2 ") {
				t.Fatalf("policy %s, line %q, want %q...\n%s", pr.Policy, pr.Line, want, strings.Join(tb.errors, "\n"))
			}
			if pr.FirstTraced != nil {
				t.Errorf("the end-to-end comparison failed at %s: the fault should be below the tolerance", pr.FirstTraced.Line())
			}
			mu.Lock()
			defer mu.Unlock()
			if pr.Origin != nil {
				posRuns += pr.Origin.PositionRuns
			}
		})
	}
}

// referenceRMS is the RMS of the CPU reference's row of stage st at (layer, pos) of prompt p.
func referenceRMS(t *testing.T, m *model.Model, p gretatest.Prompt, st golden.Stage, layer, pos int) float64 {
	t.Helper()
	tokens, err := p.Tokens(m)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.Open("cpu", &m.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	plan := trace.Plan{MaxNewTokens: max(pos+1-len(tokens), 0)}
	var rms float64
	sel := engine.NewSelection([]golden.Stage{st}, []int{max(layer, 0)}, m.Config.NLayer, []int{pos}, len(tokens)+plan.MaxNewTokens)
	if _, err := driver.Run(e, m, driver.Request{PromptID: p.ID, Tokens: tokens, Plan: plan, Keep: &driver.Keep{Sel: sel,
		Put: func(_ golden.Stage, _, _ int, row []float32) {
			var s float64
			for _, x := range row {
				s += float64(x) * float64(x)
			}
			rms = math.Sqrt(s / float64(len(row)))
		}}}); err != nil {
		t.Fatal(err)
	}
	if rms == 0 {
		t.Fatalf("no row of %s layer %d pos %d", st, layer, pos)
	}
	return rms
}

// TestExecPerOp plants errors of relative size 1e-4 in the fake external engine writing raw
// rows only (no sketch), at traced and untraced layers and positions of a 50-token prompt:
// the per-operation own error names each one exactly, far below the tolerance policy's
// reach; a clean run of the same engine is not flagged.
func TestExecPerOp(t *testing.T) {
	m, byID := tinyPrompts(t)
	backend := "exec:" + testutil.FakeEngine(t) + " --model {model} --prompt-file {prompt}"
	opts := func(plant string) []gretatest.Option {
		cmd := backend + " --raw-only"
		if plant != "" {
			cmd += " --plant " + plant
		}
		return []gretatest.Option{gretatest.LoadedModel(model.TinySpec, m), gretatest.Backend(cmd), gretatest.Baseline(), gretatest.Reference("cpu"), gretatest.MaxNewTokens(3),
			gretatest.NoArtifacts(), gretatest.Share(replayCache), gretatest.Env(func(string) string { return "" }), gretatest.Update(false)}
	}
	t.Run("clean", func(t *testing.T) {
		tb := &recorder{name: "TestExecPerOp"}
		rep := gretatest.Bisect(tb, []gretatest.Prompt{byID["m50"]}, opts("")...)
		if pr := rep.Prompts[0]; len(tb.errors) != 0 || pr.Policy != golden.PerOp.Name || pr.Result.Own == nil {
			t.Fatalf("clean engine: errors %q, policy %q", tb.errors, pr.Policy)
		}
	})
	type tcase struct {
		stage      golden.Stage
		layer, pos int
	}
	var cases []tcase
	for _, st := range []golden.Stage{golden.AttnIn, golden.QPostRope, golden.AttnCtx, golden.MLPOut, golden.V, golden.AttnOut} {
		cases = append(cases, tcase{st, 2, m50Early}, tcase{st, 5, m50Untraced})
	}
	if testing.Short() {
		cases = cases[2:3] // the attention context at an untraced layer and position
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/layer%d/pos%d", c.stage, c.layer, c.pos), func(t *testing.T) {
			tb := &recorder{name: "TestExecPerOp"}
			rep := gretatest.Bisect(tb, []gretatest.Prompt{byID["m50"]}, opts(fmt.Sprintf("stage=%s,layer=%d,pos>=%d,scale=1.0001", c.stage, c.layer, c.pos))...)
			pr := rep.Prompts[0]
			want := fmt.Sprintf("m50: FIRST_FAIL pos=%d layer=%d tensor=%s category=%s (", c.pos, c.layer, c.stage, c.stage.Category())
			if pr.Policy != golden.PerOp.Name || !strings.HasPrefix(pr.Line, want) {
				t.Fatalf("policy %s, line %q, want %q...\n%s", pr.Policy, pr.Line, want, strings.Join(tb.errors, "\n"))
			}
		})
	}
}
