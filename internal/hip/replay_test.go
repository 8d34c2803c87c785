//go:build rocm

package hip

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/ownerr"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/ref"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// TestReplayBitIdentical replays layers lo..hi on the device from the device's own rows of
// a run (kept with ownerr.KeepForReplay, the rows handed over with their device sketches):
// every row of those layers (and the logits when hi = n_layer) must have the run's values
// exactly, an own error of zero, on both routes (p6_len_16 in one batched pass, p0_short
// one token at a time), generated tokens included, on each model of the tiny family.
func TestReplayBitIdentical(t *testing.T) { forTiny(t, testReplayBitIdentical) }

func testReplayBitIdentical(t *testing.T, m *model.Model) {
	c := m.Config
	e := openGPU(t, m)
	nl := c.NLayer
	ps := standardPrompts(t, m)
	plan := trace.Plan{AllLayers: true, AllPositions: true, Prefill: true, Decode: true, MaxNewTokens: 3}
	for _, tc := range []struct {
		route string
		p     prompts.Prompt
	}{{golden.RoutePrefill, ps[1]}, {golden.RouteDecode, ps[0]}} {
		n := len(tc.p.Tokens)
		sel := plan.Resolve(nl, n)
		rows := ownerr.NewRows()
		if _, err := driver.Run(e, m, driver.Request{PromptID: tc.p.ID, Tokens: tc.p.Tokens, Plan: plan, Route: tc.route,
			Keep: ownerr.KeepForReplay(rows, sel, nl)}); err != nil {
			t.Fatal(err)
		}
		run := ownerr.Run{Config: c, Rows: rows, Prompt: n, Route: tc.route}
		for _, r := range [][2]int{{0, 0}, {1, 2}, {3, nl - 1}, {nl - 1, nl}, {nl, nl}, {0, nl}} {
			lo, hi := r[0], r[1]
			t.Run(fmt.Sprintf("%s/%d-%d", tc.route, lo, hi), func(t *testing.T) {
				recs, err := ownerr.Replay(e, run, lo, hi, sel, ownerr.Options{})
				if err != nil {
					t.Fatal(err)
				}
				perLayer := (golden.NumStages - 2) * (min(hi, nl-1) - lo + 1)
				if hi == nl {
					perLayer++
				}
				if want := perLayer * (n + plan.MaxNewTokens); len(recs) != want {
					t.Fatalf("%d rows compared, want %d", len(recs), want)
				}
				for _, r := range recs {
					if !r.Known() || r.Own.RelL2 != 0 || r.Own.MAE != 0 {
						t.Fatalf("%v: replay differs from the run: %+v %s", r.Key, r.Own, r.Missing)
					}
				}
			})
		}
	}
}

// TestReplayRejectsBadCalls: the engine's refusals, in the words of driver.CheckReplay.
func TestReplayRejectsBadCalls(t *testing.T) {
	m := handModel()
	e := openGPU(t, m)
	row := make([]float32, m.Config.Dim)
	if err := e.Replay(0, m.Config.NLayer+1, 0, row, nil); err == nil {
		t.Error("Replay past the logits: no error")
	}
	if err := e.Replay(0, 0, 0, row[:3], nil); err == nil {
		t.Error("Replay of part of a row: no error")
	}
	if err := e.Replay(0, 0, m.Config.CtxLen, row, nil); err == nil {
		t.Error("Replay past the context: no error")
	}
}

// TestOwnError measures the device's own error against the CPU reference on p6_len_16
// (the default plan over every layer, generated tokens included), on the tiny model and on
// GRETA_MODEL when set, and logs the floors a calibration would write and the margins
// against the default floors: a correct device must pass the replay policy with the
// default floors. Then faults of relative size 1e-4 planted on the device at a few stages
// must each be the first own error over Factor x the floors calibrated from the clean run,
// exactly where they were planted.
func TestOwnError(t *testing.T) { againstCPU(t, testOwnError) }

func testOwnError(t *testing.T, m *model.Model, gpu *Engine, cpu engine.Engine) {
	c := m.Config
	p := standardPrompts(t, m)[1]
	plan := trace.DefaultPlan()
	plan.AllLayers = true
	sel := plan.Resolve(c.NLayer, len(p.Tokens))
	rows := ownerr.NewRows()
	start := time.Now()
	if _, err := driver.Run(cpu, m, driver.Request{PromptID: p.ID, Tokens: p.Tokens, Plan: plan,
		Keep: ownerr.KeepForReplay(rows, sel, c.NLayer)}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: the CPU reference's run kept %.0f MB in %v", m.Name, float64(rows.Bytes())/1e6,
		time.Since(start).Round(time.Millisecond))
	refRun := ownerr.Run{Config: c, Rows: rows, Prompt: len(p.Tokens)}
	candRows := ownerr.NewRows()
	if _, err := driver.Run(gpu, m, driver.Request{PromptID: p.ID, Tokens: p.Tokens, Plan: plan,
		Keep: ownerr.KeepRows(candRows, sel, c.NLayer)}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	clean, err := ownerr.Own(gpu, refRun, sel, ownerr.Options{Candidate: candRows})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: own errors of %d rows, every layer replayed, in %v", m.Name, len(clean), time.Since(start).Round(time.Millisecond))
	var defaults *ownerr.Floors
	t.Logf("%s on %s, own error against the default floors:\n%s", m.Name, gpu.Device(),
		ownerr.FormatMargins(defaults.Margins(c, clean)))
	if over := defaults.FirstOver(c, clean, ownerr.Factor); over != nil {
		t.Errorf("clean device: %v has own error %.3g, over %d x the default floor %.3g", over.Key, over.Own.RelL2,
			ownerr.Factor, defaults.Floor(c, over.Key))
	}
	floors := ownerr.Calibrate(ownerr.MethodReplay, clean)
	floors.Device, floors.Reference, floors.Model, floors.Prompts = gpu.Device(), ref.Name, m.Name, []string{p.ID}
	var b bytes.Buffer
	if err := floors.Write(&b); err != nil {
		t.Fatal(err)
	}
	t.Logf("floors of %s on %s (noise.json):\n%s", m.Name, gpu.Device(), b.String())

	for _, f := range []engine.Fault{
		{Stage: golden.AttnIn, Layer: 1, PosMin: 826, PosMax: -1, Scale: 1.0001},
		{Stage: golden.QPostRope, Layer: 4, PosMin: 3, PosMax: -1, Scale: 1.0001},
		{Stage: golden.AttnCtx, Layer: 8, PosMin: 826, PosMax: -1, Scale: 1.0001},
		{Stage: golden.MLPOut, Layer: 3, PosMin: 828, PosMax: -1, Scale: 1.0001},
		{Stage: golden.Logits, Layer: c.NLayer, PosMin: 826, PosMax: -1, Scale: 1.0001},
	} {
		want := ownerr.Key{Stage: f.Stage, Layer: f.Layer, Pos: f.PosMin}
		t.Run(fmt.Sprintf("%s_L%d_pos%d", f.Stage, f.Layer, f.PosMin), func(t *testing.T) {
			recs, err := ownerr.Own(gpu, refRun, sel, ownerr.Options{Faults: []engine.Fault{f}})
			if err != nil {
				t.Fatal(err)
			}
			got := floors.FirstOver(c, recs, ownerr.Factor)
			if got == nil || got.Key != want {
				t.Fatalf("FIRST_FAIL %v, want %v", got, want)
			}
			t.Logf("%v: own error %.3g, %.0f x its floor", want, got.Own.RelL2, got.Own.RelL2/floors.Floor(c, got.Key))
		})
	}
}
