package gretatest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	_ "github.com/gretabisect/gretabisect/internal/testutil"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// fakeTB collects what Bisect reports.
type fakeTB struct {
	name   string
	errors []string
	logs   []string
}

func (f *fakeTB) Helper()      {}
func (f *fakeTB) Name() string { return f.name }
func (f *fakeTB) Errorf(format string, args ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Run(name string, fn func(TB)) bool {
	sub := &fakeTB{name: f.name + "/" + name}
	fn(sub)
	f.errors = append(f.errors, sub.errors...)
	f.logs = append(f.logs, sub.logs...)
	return len(sub.errors) == 0
}

// toyPrompt has 50 tokens: with the windows 0..15, 17..32 and 34..49, critical position 40
// and 3 generated tokens (50..52), positions 16 and 33 are untraced.
func toyPrompt() Prompt {
	toks := make([]int32, 50)
	for i := range toks {
		toks[i] = int32((i*7 + 3) % 16)
	}
	return TokenPrompt("toy50", toks...)
}

func toyOptions(t *testing.T, extra ...Option) []Option {
	return append([]Option{
		LoadedModel("toy", toyModel()), Backend("toy"), Reference("toy"), Baseline(),
		Critical(), MaxNewTokens(3), Artifacts(t.TempDir()), Env(func(string) string { return "" }), Update(false),
	}, extra...)
}

// TestToyMatrix injects a fault at every stage, at traced and untraced layers and positions,
// and checks that self-bisection names exactly the injected stage, layer and position
// (-short: every third case).
func TestToyMatrix(t *testing.T) {
	type tcase struct {
		stage golden.Stage
		layer int
		pos   int
	}
	var cases []tcase
	for _, si := range golden.Stages() {
		for _, layer := range []int{0, 3, 9} {
			if !si.PerLayer && layer != 0 {
				continue
			}
			for _, pos := range []int{5, 16, 33, 51} {
				if (pos == 16 || pos == 33) && !observable(si.Stage, layer, 9) {
					continue
				}
				cases = append(cases, tcase{si.Stage, layer, pos})
			}
		}
	}
	cache := NewCache()
	nLayer := toyModel().Config.NLayer
	for i, c := range cases {
		if testing.Short() && i%3 != 0 {
			continue // -short: every third case
		}
		name := fmt.Sprintf("%s/layer%d/pos%d", c.stage, c.layer, c.pos)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := engine.Fault{Stage: c.stage, Layer: c.layer, PosMin: c.pos, PosMax: c.pos, Scale: 1.5, Add: 0.25}
			tb := &fakeTB{name: "TestToy"}
			rep := Bisect(tb, []Prompt{toyPrompt()}, toyOptions(t, Inject(f), Share(cache), NoArtifacts())...)
			pr := rep.Prompts[0]
			if pr.Origin == nil {
				t.Fatalf("no origin; errors:\n%s", strings.Join(tb.errors, "\n"))
			}
			o := pr.Origin
			want := Origin{Stage: c.stage, Layer: golden.LayerOf(c.stage, c.layer, nLayer), Pos: c.pos, Category: c.stage.Category()}
			got := Origin{Stage: o.Stage, Layer: o.Layer, Pos: o.Pos, Category: o.Category}
			if got.String() != want.String() {
				t.Errorf("origin %s, want %s\n%s", got.String(), want.String(), strings.Join(tb.errors, "\n"))
			}
			checkLayerRuns(t, pr, trace.DefaultLayers)
		})
	}
}

// observable reports whether a fault at an untraced prompt position can show in a trace: a
// row-local stage of the last layer reaches only that row's logits, which are not computed.
func observable(st golden.Stage, layer, lastLayer int) bool {
	switch {
	case st == golden.Logits:
		return false
	case layer < lastLayer || !st.Info().PerLayer:
		return true
	}
	// In the last layer only what enters the KV cache reaches other (traced) positions.
	return st <= golden.KPostRope && st != golden.QPreRope && st != golden.QPostRope
}

// checkLayerRuns checks the bound on layer bisection: at most ceil(log2(gap))+1 runs for the
// gap of untraced layers below the first failing traced layer.
func checkLayerRuns(t *testing.T, pr *PromptReport, traced []int) {
	t.Helper()
	prev := -1
	for _, l := range traced {
		if l < pr.FirstTraced.Layer {
			prev = l
		}
	}
	gap := max(pr.FirstTraced.Layer-prev-1, 0)
	if pr.Origin.LayerRuns > maxLayerRuns(gap) {
		t.Errorf("%d layer runs for a gap of %d layers below layer %d, want at most %d",
			pr.Origin.LayerRuns, gap, pr.FirstTraced.Layer, maxLayerRuns(gap))
	}
}
