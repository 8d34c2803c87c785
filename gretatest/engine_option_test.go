package gretatest

import (
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/gretatest/engine"
)

// TestEngineOption bisects an engine passed by value, as a module of its own passes its
// engine: it is the backend under test and, with injected faults, its own live baseline.
func TestEngineOption(t *testing.T) {
	opened := 0
	toy := func(m *engine.Model) (engine.Engine, error) {
		opened++
		e := &toyEngine{cfg: m.Config, device: "mine"}
		e.Reset()
		return e, nil
	}
	opts := func(extra ...Option) []Option {
		return append([]Option{LoadedModel("toy", toyModel()), Engine("mine", toy), Baseline(),
			Critical(), MaxNewTokens(3), NoArtifacts(), Env(func(string) string { return "" }), Update(false)}, extra...)
	}
	tb := &fakeTB{name: "TestEngineOption"}
	rep := Bisect(tb, []Prompt{toyPrompt()}, opts(Reference("toy"))...)
	if len(tb.errors) != 0 || rep.Prompts[0].Device != "mine" || rep.Prompts[0].Compared == 0 || opened != 1 {
		t.Fatalf("clean run: errors %q, device %q, compared %d, opened %d", tb.errors, rep.Prompts[0].Device, rep.Prompts[0].Compared, opened)
	}

	// The reference of a rehearsal is the engine itself without the faults: opened by value too.
	tb = &fakeTB{name: "TestEngineOption"}
	Bisect(tb, []Prompt{toyPrompt()}, opts(InjectSpec("stage=attn_out,layer=5,pos>=20,scale=1.5"))...)
	if len(tb.errors) != 1 || !strings.HasPrefix(tb.errors[0], "toy50: FIRST_FAIL pos=20 layer=5 tensor=attn_out") || opened != 3 {
		t.Errorf("injected fault: %q, %d engines opened (want 3: two runs' backends and the live baseline)", tb.errors, opened)
	}

	for _, tc := range []struct {
		name string
		open engine.Factory
		want string
	}{
		{"mine", nil, `gretatest.Engine("mine"): no factory`},
		{"", toy, `gretatest.Engine(""): want a name`},
		{"exec:x", toy, `gretatest.Engine("exec:x"): want a name`},
	} {
		tb := &fakeTB{name: "TestEngineOption"}
		Bisect(tb, []Prompt{toyPrompt()}, Engine(tc.name, tc.open))
		if len(tb.errors) != 1 || !strings.Contains(tb.errors[0], tc.want) {
			t.Errorf("Engine(%q, ...): %q, want %q", tc.name, tb.errors, tc.want)
		}
	}
}
