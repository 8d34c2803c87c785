package policytest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/bisecttest"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/ownerr"
	"github.com/gretabisect/gretabisect/internal/ref"
	"github.com/gretabisect/gretabisect/internal/testutil"
)

// replayCache shares the reference's runs between the tests.
var replayCache = gretatest.NewCache()

// TestNoiseFloors calibrates the candidate on the tiny model over the standard prompts and
// checks that the committed golden/testdata/<device>/tiny/noise.json holds exactly those
// floors (a deterministic backend calibrates to the same bytes); -update re-records it, and
// the tests after it read the new file.
func TestNoiseFloors(t *testing.T) {
	if testing.Short() {
		t.Skip("replays every layer of the three standard prompts")
	}
	m, err := model.Open(model.TinySpec)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.Open(Candidate(), &m.Model)
	if err != nil {
		t.Fatal(err)
	}
	device := e.Device()
	e.Close()
	committed := ownerr.NoisePath(GoldenRoot(t), device, model.TinySpec)
	tb := bisecttest.NewRecorder(t.Name())
	rep := gretatest.Bisect(tb, gretatest.StandardPrompts(), gretatest.LoadedModel(model.TinySpec, m), gretatest.Backend(Candidate()), gretatest.Calibrate(),
		gretatest.GoldenDir(CrossDeviceRoot(t)), gretatest.Share(replayCache), gretatest.NoArtifacts(), gretatest.Env(func(string) string { return "" }))
	if len(tb.Errors) > 0 || rep.Calibration == nil {
		t.Fatalf("calibration: %q", tb.Errors)
	}
	t.Logf("%s on %s:\n%s", Candidate(), device, rep.Calibration.Table)
	// The CPU candidate's own errors are float32 rounding, well below the default floors; a
	// device's may pass them, but a correct one stays within the default policy's factor.
	limit := float64(ownerr.Factor)
	if Candidate() == ref.F64AccName {
		limit = 1
	}
	for _, mg := range rep.Calibration.Margins {
		if !(mg.Ratio < limit) {
			t.Errorf("stage %s: worst own error %.3g is %.3g x its default floor (want < %g)", mg.Stage, mg.Worst.Own.RelL2, mg.Ratio, limit)
		}
	}
	got, err := os.ReadFile(rep.Calibration.Path)
	if err != nil {
		t.Fatal(err)
	}
	if testutil.Update() {
		if err := os.MkdirAll(filepath.Dir(committed), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(committed, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(committed)
	if err != nil {
		t.Fatalf("%v; record it with: go test ./gretatest/policytest -run TestNoiseFloors -update", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("calibration differs from %s; re-record it with: go test ./gretatest/policytest -run TestNoiseFloors -update", committed)
	}
}

// TestReplayPolicyClean runs the candidate against the CPU reference's goldens: the replay
// policy is the default (the candidate replays layers, the goldens are another device's),
// every layer's own error is measured, and none exceeds its calibrated floor.
func TestReplayPolicyClean(t *testing.T) {
	ps := gretatest.StandardPrompts()
	if testing.Short() {
		ps = ps[:1]
	}
	tb := bisecttest.NewRecorder(t.Name())
	rep := gretatest.Bisect(tb, ps, gretatest.Backend(Candidate()), gretatest.GoldenDir(CrossDeviceRoot(t)), gretatest.Share(replayCache), gretatest.NoArtifacts(),
		gretatest.Env(func(string) string { return "" }), gretatest.Update(false))
	if len(tb.Errors) > 0 {
		t.Fatalf("clean candidate reported:\n%s", strings.Join(tb.Errors, "\n"))
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
		if pr.FirstTraced != nil { // end to end, a correct backend is within the tolerance too
			t.Errorf("%s: the end-to-end comparison failed at %s", pr.PromptID, pr.FirstTraced.Line())
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
		t.Logf("%s on %s: %d own errors, worst %.3g x its floor", pr.PromptID, pr.Device, len(own.Records), worst)
	}
}

// TestReplaySensitivity plants faults of relative size 1e-4 in the candidate at every stage
// of the 50-token prompt (ShortCases): the replay policy must name exactly the planted
// stage, layer, position and category in every case, while the end-to-end comparison stays
// within the tolerance policy's rel_l2 of 1e-3. longtest has the cases at 826 and 1652.
func TestReplaySensitivity(t *testing.T) {
	cases := ShortCases(testing.Short())
	if len(cases) < 60 && !testing.Short() {
		t.Fatalf("%d cases, want at least 60", len(cases))
	}
	start := time.Now()
	n := RunSensitivity(t, cases, CrossDeviceRoot(t), replayCache)
	t.Logf("%d cases on %s in %v, %d with a replay of every position", len(cases), Candidate(), time.Since(start).Round(time.Millisecond), n)
}
