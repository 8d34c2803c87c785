// Package policytest tests the policies that judge a backend by its own error (replay, and
// per operation for an external engine) against the CPU reference, through gretatest's
// public API: calibration, clean runs and the sensitivity matrix. They replay every layer of
// long prompts many times, so they have test binaries, and go test's time budgets, of their
// own: this package (calibration, clean runs, the 50-token sensitivity cases), longtest (the
// sensitivity cases at positions 826 and 1652) and peroptest (an external engine's own
// error per operation). This file holds what they share.
//
// The backend judged is the CPU candidate (cpu-f64acc: correct, but rounding differently
// from the reference) unless GRETA_POLICY_BACKEND names another one that replays layers:
// hip on a GPU runner (built with -tags rocm).
package policytest

import (
	"cmp"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/bisecttest"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/ref"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// EnvBackend names the backend the policy tests judge.
const EnvBackend = "GRETA_POLICY_BACKEND"

// Candidate is the backend under test: GRETA_POLICY_BACKEND, else the CPU candidate.
func Candidate() string { return cmp.Or(os.Getenv(EnvBackend), ref.F64AccName) }

// GoldenRoot is the real golden folder (golden/testdata, from a package two levels below
// the module root or three).
func GoldenRoot(t testing.TB) string {
	t.Helper()
	for _, up := range []string{"../..", "../../.."} {
		dir := filepath.Join(up, "golden", "testdata")
		if _, err := os.Stat(filepath.Join(up, "go.mod")); err == nil {
			return dir
		}
	}
	t.Fatal("no go.mod above the test's folder")
	return ""
}

// CrossDeviceRoot builds a golden folder holding the CPU reference's goldens of the tiny
// model and every committed noise.json, and nothing else: whatever device the candidate
// runs on (hip's has exact goldens of its own for tiny), it is judged against the CPU
// reference's goldens, by the replay policy, with its committed floors.
func CrossDeviceRoot(t testing.TB) string {
	t.Helper()
	src, dst := GoldenRoot(t), t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if !strings.HasPrefix(rel, filepath.Join("cpu", model.TinySpec)+string(filepath.Separator)) && d.Name() != "noise.json" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// SensitivityCase plants one small fault in the candidate.
type SensitivityCase struct {
	Prompt string
	Stage  golden.Stage
	Layer  int
	Pos    int
	Add    bool // an additive fault of 1e-4 x the reference row's RMS; else a scale of 1.0001
}

func (c SensitivityCase) String() string {
	kind := "scale"
	if c.Add {
		kind = "add"
	}
	return fmt.Sprintf("%s/%s/layer%d/pos%d/%s", c.Prompt, c.Stage, c.Layer, c.Pos, kind)
}

// Faults of the sensitivity matrix: a scale of 1 + 1e-4, and an addition of 1e-4 times the
// RMS of the reference's row at the faulted position (so the additive fault has the same
// relative size in every stage, whatever its magnitude: a residual of RMS 1 and logits of
// RMS 3 alike).
const (
	SensitivityScale = 1.0001
	SensitivityAdd   = 1e-4
)

// ShortCases covers every stage with a scale and an additive fault, at traced (0, 1, 2, 4,
// 8) and untraced (3, 5, 6, 7, 9) layers, at early, untraced and decode positions of the
// 50-token prompt: 60 cases. -short keeps a quarter of them.
func ShortCases(short bool) []SensitivityCase {
	traced, untraced := trace.DefaultLayers, []int{3, 5, 6, 7, 9}
	var cases []SensitivityCase
	for i, si := range golden.Stages() {
		st := si.Stage
		t, u := traced[i%len(traced)], untraced[i%len(untraced)]
		untracedPos := bisecttest.M50Untraced
		if st == golden.Logits { // logits are computed only at the rows a run asks for
			untracedPos = bisecttest.M50Decode - 1
		}
		cases = append(cases,
			SensitivityCase{Prompt: "m50", Stage: st, Layer: t, Pos: bisecttest.M50Early},
			SensitivityCase{Prompt: "m50", Stage: st, Layer: u, Pos: bisecttest.M50Early, Add: true},
			SensitivityCase{Prompt: "m50", Stage: st, Layer: u, Pos: untracedPos, Add: i%2 == 0},
			SensitivityCase{Prompt: "m50", Stage: st, Layer: t, Pos: bisecttest.M50Decode, Add: i%2 == 1})
	}
	if short {
		var sub []SensitivityCase
		for i, c := range cases {
			if i%8 == i/8%4 { // each of the four kinds of case in turn, every other stage
				sub = append(sub, c)
			}
		}
		return sub
	}
	return cases
}

// LongCases are the faults at positions 826 and 1652 of the standard prompts (each runs the
// candidate over the whole long prompt several times).
func LongCases() []SensitivityCase {
	return []SensitivityCase{
		{Prompt: prompts.P6Len16, Stage: golden.KPostRope, Layer: 3, Pos: bisecttest.P6Len16Crit},
		{Prompt: prompts.P6Len16, Stage: golden.MLPOut, Layer: 4, Pos: bisecttest.P6Len16Crit, Add: true},
		{Prompt: prompts.P6Len32, Stage: golden.AttnCtx, Layer: 8, Pos: bisecttest.P6Len32Crit, Add: true},
		{Prompt: prompts.P6Len32, Stage: golden.V, Layer: 5, Pos: bisecttest.P6Len32Crit},
	}
}

// RunSensitivity plants each case's fault in the candidate, compared with the CPU reference
// (its goldens under root for the standard prompts, a live run for the 50-token prompt):
// the replay policy must name exactly the planted stage, layer, position and category, with
// the end-to-end comparison within tolerance. It returns how many cases needed a replay at
// every position of the origin's layer.
func RunSensitivity(t *testing.T, cases []SensitivityCase, root string, cache *gretatest.Cache) (positionSearches int) {
	m, byID := bisecttest.ModelPrompts(t, model.TinySpec)
	results := make(chan int, len(cases))
	t.Run("cases", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.String(), func(t *testing.T) {
				t.Parallel()
				results <- runCase(t, m, byID[c.Prompt], c, root, cache)
			})
		}
	})
	close(results)
	for n := range results {
		positionSearches += n
	}
	return positionSearches
}

func runCase(t *testing.T, m *model.Model, p gretatest.Prompt, c SensitivityCase, root string, cache *gretatest.Cache) int {
	f := engine.Fault{Stage: c.Stage, Layer: c.Layer, PosMin: c.Pos, PosMax: -1, Scale: SensitivityScale}
	if c.Add {
		f.Scale, f.Add = 1, float32(SensitivityAdd*ReferenceRMS(t, m, p, c.Stage, c.Layer, c.Pos))
	}
	opts := []gretatest.Option{gretatest.LoadedModel(model.TinySpec, m), gretatest.Backend(Candidate()), gretatest.Inject(f), gretatest.Share(cache),
		gretatest.GoldenDir(root), gretatest.NoArtifacts(), gretatest.Env(func(string) string { return "" }), gretatest.Update(false)}
	if c.Prompt == "m50" {
		opts = append(opts, gretatest.MaxNewTokens(3), gretatest.Baseline(), gretatest.Reference("cpu"))
	}
	tb := bisecttest.NewRecorder(t.Name())
	rep := gretatest.Bisect(tb, []gretatest.Prompt{p}, opts...)
	pr := rep.Prompts[0]
	want := fmt.Sprintf("%s: FIRST_FAIL pos=%d layer=%d tensor=%s category=%s (", c.Prompt, c.Pos,
		golden.LayerOf(c.Stage, c.Layer, m.Config.NLayer), c.Stage, c.Stage.Category())
	if pr.Policy != golden.Replay.Name || !strings.HasPrefix(pr.Line, want) || !strings.Contains(pr.Line, ", own rel_l2 ") {
		t.Fatalf("policy %s, line %q, want %q...\n%s", pr.Policy, pr.Line, want, strings.Join(tb.Errors, "\n"))
	}
	t.Logf("%s", pr.Line)
	if pr.FirstTraced != nil {
		t.Errorf("the end-to-end comparison failed at %s: the fault should be below the tolerance", pr.FirstTraced.Line())
	}
	if pr.Origin != nil {
		return pr.Origin.PositionRuns
	}
	return 0
}

// ReferenceRMS is the RMS of the CPU reference's row of stage st at (layer, pos) of prompt p.
func ReferenceRMS(t testing.TB, m *model.Model, p gretatest.Prompt, st golden.Stage, layer, pos int) float64 {
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
