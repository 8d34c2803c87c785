// Package peroptest is the per-operation own error of an external engine (the fake engine
// writing raw rows only) against the CPU reference, in a test binary of its own: each case
// runs the engine three or four times.
package peroptest

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest"
	"github.com/gretabisect/gretabisect/internal/bisecttest"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveFakeEngine()
	os.Exit(code)
}

// TestExecPerOp plants errors of relative size 1e-4 in the fake external engine writing raw
// rows only (no sketch), at traced and untraced layers and positions of a 50-token prompt:
// the per-operation own error names each one exactly, far below the tolerance policy's
// reach; a clean run of the same engine is not flagged.
func TestExecPerOp(t *testing.T) {
	m, byID := bisecttest.ModelPrompts(t, model.TinySpec)
	backend := "exec:" + testutil.FakeEngine(t) + " --model {model} --prompt-file {prompt}"
	cache := gretatest.NewCache()
	opts := func(plant string) []gretatest.Option {
		cmd := backend + " --raw-only"
		if plant != "" {
			cmd += " --plant " + plant
		}
		return []gretatest.Option{gretatest.LoadedModel(model.TinySpec, m), gretatest.Backend(cmd), gretatest.Baseline(), gretatest.Reference("cpu"), gretatest.MaxNewTokens(3),
			gretatest.NoArtifacts(), gretatest.Share(cache), gretatest.Env(func(string) string { return "" }), gretatest.Update(false)}
	}
	t.Run("clean", func(t *testing.T) {
		tb := bisecttest.NewRecorder(t.Name())
		rep := gretatest.Bisect(tb, []gretatest.Prompt{byID["m50"]}, opts("")...)
		if pr := rep.Prompts[0]; len(tb.Errors) != 0 || pr.Policy != golden.PerOp.Name || pr.Result.Own == nil {
			t.Fatalf("clean engine: errors %q, policy %q", tb.Errors, pr.Policy)
		}
	})
	type tcase struct {
		stage      golden.Stage
		layer, pos int
	}
	// Each operation kind once (a norm, RoPE, the attention context, the MLP, a projection,
	// the output projection), alternately at a traced layer and position and at an untraced
	// one (so found by the extra runs).
	var cases []tcase
	for i, st := range []golden.Stage{golden.AttnIn, golden.QPostRope, golden.AttnCtx, golden.MLPOut, golden.V, golden.AttnOut} {
		if i%2 == 0 {
			cases = append(cases, tcase{st, 2, bisecttest.M50Early})
		} else {
			cases = append(cases, tcase{st, 5, bisecttest.M50Untraced})
		}
	}
	if testing.Short() {
		cases = cases[3:4]
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/layer%d/pos%d", c.stage, c.layer, c.pos), func(t *testing.T) {
			tb := bisecttest.NewRecorder(t.Name())
			rep := gretatest.Bisect(tb, []gretatest.Prompt{byID["m50"]}, opts(fmt.Sprintf("stage=%s,layer=%d,pos>=%d,scale=1.0001", c.stage, c.layer, c.pos))...)
			pr := rep.Prompts[0]
			want := fmt.Sprintf("m50: FIRST_FAIL pos=%d layer=%d tensor=%s category=%s (", c.pos, c.layer, c.stage, c.stage.Category())
			if pr.Policy != golden.PerOp.Name || !strings.HasPrefix(pr.Line, want) {
				t.Fatalf("policy %s, line %q, want %q...\n%s", pr.Policy, pr.Line, want, strings.Join(tb.Errors, "\n"))
			}
		})
	}
}
