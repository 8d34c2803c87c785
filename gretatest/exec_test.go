package gretatest

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
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
			Env(env), NoArtifacts(), withUpdate(false))
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
			Env(env), NoArtifacts())
		pr := rep.Prompts[0]
		want := "m50: FIRST_FAIL pos=16 layer=5 tensor=v category=ATTN_KERNEL_INPUTS ("
		if !strings.HasPrefix(pr.Line, want) || pr.Origin == nil || pr.Origin.LayerRuns == 0 || pr.Origin.PositionRuns == 0 {
			t.Errorf("line %q, want prefix %q, layer and position runs; reported:\n%s", pr.Line, want, strings.Join(tb.errors, "\n"))
		}
	})
}
