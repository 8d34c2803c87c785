package gretatest

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// buildFakeEngine builds internal/fakeengine, a stand-in for an external engine.
func buildFakeEngine(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fakeengine")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/gretabisect/gretabisect/internal/fakeengine").CombinedOutput()
	if err != nil {
		t.Fatalf("building the fake engine: %v\n%s", err, out)
	}
	return bin
}

// TestExecBackend runs an external engine through GRETA_BACKEND's exec: form: clean, it
// matches the CPU goldens under tolerance; with a planted bug, self-bisection (which re-runs
// the engine with other seed variables) names the bug.
func TestExecBackend(t *testing.T) {
	bin := buildFakeEngine(t)
	m, err := model.Open(model.TinySpec)
	if err != nil {
		t.Fatal(err)
	}
	env := func(string) string { return "" }
	backend := "exec:" + bin + " --model {model} --prompt-file {prompt}"

	t.Run("clean against the goldens", func(t *testing.T) {
		tb := &fakeTB{name: "TestExecBackend"}
		rep := Bisect(tb, StandardPrompts()[:1], LoadedModel(model.TinySpec, m), Backend(backend),
			Env(env), NoArtifacts(), Update(false))
		pr := rep.Prompts[0]
		if len(tb.errors) != 0 {
			t.Fatalf("errors: %q", tb.errors)
		}
		if pr.Device != "exec" || pr.Policy != "tolerance" || !strings.HasSuffix(pr.Baseline, filepath.Join("cpu", "tiny", "p0_short_trace.jsonl")) || pr.Compared == 0 {
			t.Errorf("device %q policy %q baseline %q compared %d", pr.Device, pr.Policy, pr.Baseline, pr.Compared)
		}
	})

	t.Run("planted bug", func(t *testing.T) {
		p16, err := prompts.Standard(prompts.P6Len16, m.Tokenizer)
		if err != nil {
			t.Fatal(err)
		}
		tb := &fakeTB{name: "TestExecBackend"}
		rep := Bisect(tb, []Prompt{TokenPrompt("m50", p16.Tokens[:50]...)}, LoadedModel(model.TinySpec, m),
			Backend(backend+" --plant stage=v,layer=5,pos>=16,scale=1.5"), Baseline(), MaxNewTokens(2),
			Env(env), NoArtifacts(), Update(false))
		pr := rep.Prompts[0]
		want := "m50: FIRST_FAIL pos=16 layer=5 tensor=v category=ATTN_KERNEL_INPUTS ("
		if !strings.HasPrefix(pr.Line, want) || pr.Origin == nil || pr.Origin.LayerRuns == 0 || pr.Origin.PositionRuns == 0 {
			t.Errorf("line %q, want prefix %q, layer and position runs; reported:\n%s", pr.Line, want, strings.Join(tb.errors, "\n"))
		}
	})
}

// TestPlanEnv checks that the seed environment given to an external engine selects exactly
// the planned rows when read back the seed's way.
func TestPlanEnv(t *testing.T) {
	plan := trace.DefaultPlan()
	plan.MaxNewTokens = 2
	const nLayer, nPrompt = 10, 60
	want := plan.Resolve(nLayer, nPrompt)
	f := trace.Fault{Stage: golden.V, Layer: 5, PosMin: 16, PosMax: -1, Scale: 1.5}
	env := planEnv(want, run{prompt: TokenPrompt("p"), plan: plan, faults: []trace.Fault{f}})
	for _, kv := range []string{"GRETA_B3_61=1", "GRETA_TRACE_STAGE=1", "GRETA_TRACE_STAGE_LAYERS=0,1,2,4,8",
		"GRETA_TRACE_B3_61_ATTN_CTX=1", "GRETA_TRACE_B3_61_POS_59=1", "GRETA_TRACE_B3_61_POS_61=1",
		"GRETA_MAX_NEW_TOKENS=2", "GRETA_PROMPT_ID=p", "GRETA_INJECT=stage=v,layer=5,pos>=16,scale=1.5"} {
		if !slices.Contains(env, kv) {
			t.Errorf("environment lacks %s", kv)
		}
	}
	// What fakeengine does: the seed variables applied to a plan of both phases.
	read, err := trace.PlanFromEnv(trace.Plan{Prefill: true, Decode: true, MaxNewTokens: 2}, env)
	if err != nil {
		t.Fatal(err)
	}
	got := read.Resolve(nLayer, nPrompt)
	if diff := cmp.Diff([][]int{want.Layers(), want.Positions()}, [][]int{got.Layers(), got.Positions()}); diff != "" {
		t.Errorf("layers and positions read back (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want.Stages(), got.Stages()); diff != "" {
		t.Errorf("stages read back (-want +got):\n%s", diff)
	}
}
