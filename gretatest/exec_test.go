package gretatest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
)

var fakeEngine struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// buildFakeEngine builds internal/fakeengine, a stand-in for an external engine, once per
// test binary (TestMain removes it).
func buildFakeEngine(t *testing.T) string {
	t.Helper()
	fakeEngine.once.Do(func() {
		if fakeEngine.dir, fakeEngine.err = os.MkdirTemp("", "fakeengine-"); fakeEngine.err != nil {
			return
		}
		fakeEngine.bin = filepath.Join(fakeEngine.dir, "fakeengine")
		out, err := exec.Command("go", "build", "-o", fakeEngine.bin, "github.com/gretabisect/gretabisect/internal/fakeengine").CombinedOutput()
		if err != nil {
			fakeEngine.err = err
			fakeEngine.bin = string(out)
		}
	})
	if fakeEngine.err != nil {
		t.Fatalf("building the fake engine: %v\n%s", fakeEngine.err, fakeEngine.bin)
	}
	return fakeEngine.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fakeEngine.dir != "" {
		os.RemoveAll(fakeEngine.dir)
	}
	os.Exit(code)
}

// execSetup returns the tiny model and the fake engine's command line.
func execSetup(t *testing.T) (*model.Model, string) {
	bin := buildFakeEngine(t)
	m, err := model.Open(model.TinySpec)
	if err != nil {
		t.Fatal(err)
	}
	return m, "exec:" + bin + " --model {model} --prompt-file {prompt}"
}

// execOptions compares the fake engine (with extra flags) with the committed CPU goldens of
// the tiny model, artifacts under art.
func execOptions(m *model.Model, backend, art string, extra ...Option) []Option {
	return append([]Option{LoadedModel(model.TinySpec, m), Backend(backend), Env(func(string) string { return "" }),
		Artifacts(art), Update(false)}, extra...)
}

// maskArtifacts replaces the artifacts folder and the date in a message.
func maskArtifacts(msg, art string) string {
	return masked(msg, map[string]string{art: "$ART"})
}

// TestExecBackend runs an external engine through GRETA_BACKEND's exec: form: clean, it
// matches the CPU goldens under tolerance; with a planted bug, self-bisection (which re-runs
// the engine with other plans) names the bug, whether the engine reads the seed's variables
// or the plan file.
func TestExecBackend(t *testing.T) {
	m, backend := execSetup(t)
	for _, mode := range []string{"", " --plan-file"} {
		t.Run("clean"+mode, func(t *testing.T) {
			tb := &fakeTB{name: "TestExecBackend"}
			rep := Bisect(tb, StandardPrompts()[:1], execOptions(m, backend+mode, t.TempDir())...)
			pr := rep.Prompts[0]
			if len(tb.errors) != 0 {
				t.Fatalf("errors: %q", tb.errors)
			}
			if pr.Device != "exec" || pr.Policy != "tolerance" || !strings.HasSuffix(pr.Baseline, filepath.Join("cpu", "tiny", "p0_short_trace.jsonl")) || pr.Compared != 670 {
				t.Errorf("device %q policy %q baseline %q compared %d", pr.Device, pr.Policy, pr.Baseline, pr.Compared)
			}
		})
		t.Run("planted bug"+mode, func(t *testing.T) {
			p16, err := prompts.Standard(prompts.P6Len16, m.Tokenizer)
			if err != nil {
				t.Fatal(err)
			}
			tb := &fakeTB{name: "TestExecBackend"}
			rep := Bisect(tb, []Prompt{TokenPrompt("m50", p16.Tokens[:50]...)}, execOptions(m,
				backend+mode+" --plant stage=v,layer=5,pos>=16,scale=1.5", t.TempDir(), Baseline(), MaxNewTokens(2))...)
			pr := rep.Prompts[0]
			want := "m50: FIRST_FAIL pos=16 layer=5 tensor=v category=ATTN_KERNEL_INPUTS ("
			if !strings.HasPrefix(pr.Line, want) || pr.Origin == nil || pr.Origin.LayerRuns == 0 || pr.Origin.PositionRuns == 0 {
				t.Errorf("line %q, want prefix %q, layer and position runs; reported:\n%s", pr.Line, want, strings.Join(tb.errors, "\n"))
			}
		})
	}
}
