package gretatest

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// matrixCase injects one fault and names the origin self-bisection must report.
type matrixCase struct {
	prompt string // "m50" (a 50-token prefix of p6_len_16) or a standard prompt id
	stage  golden.Stage
	layer  int
	pos    int
}

// Positions of the 50-token prompt: windows 0..15, 17..32 and 34..49 are traced, 16 and 33
// are not; 51 is the second generated token.
const (
	m50Len      = 50
	m50Early    = 2
	m50Untraced = 16
	m50Decode   = 51
	p6Len16Crit = 826
	p6Len32Crit = 1652
	// matrixScale is GRETA_INJECT's example perturbation: small, yet every row changes bits.
	matrixScale = 1.001
)

// matrixCases covers every stage at traced and untraced layers of an nLayer-layer model,
// at an early traced position, an untraced position (position bisection) and a decode
// position of the 50-token prompt (four cases a stage; embed_out three, logits two: 57),
// and returns those whose index keep accepts. rot shifts the layers each stage is put at, so that models given different
// rotations hit other layers.
func matrixCases(nLayer, rot int, keep func(i int) bool) []matrixCase {
	var traced, untraced []int
	for l := range nLayer {
		if slices.Contains(trace.DefaultLayers, l) {
			traced = append(traced, l)
		} else {
			untraced = append(untraced, l)
		}
	}
	var cases []matrixCase
	for i, si := range golden.Stages() {
		st := si.Stage
		switch {
		case st == golden.EmbedOut:
			for _, pos := range []int{m50Early, m50Untraced, m50Decode} {
				cases = append(cases, matrixCase{"m50", st, 0, pos})
			}
		case st == golden.Logits:
			for _, pos := range []int{m50Early, m50Decode} { // untraced rows have no logits
				cases = append(cases, matrixCase{"m50", st, 0, pos})
			}
		default:
			// Rotate the layers so every traced and untraced layer appears.
			t, u := traced[(i+rot)%len(traced)], untraced[(i+rot)%len(untraced)]
			cases = append(cases,
				matrixCase{"m50", st, t, m50Early},
				matrixCase{"m50", st, t, m50Untraced},
				matrixCase{"m50", st, u, m50Early},
				matrixCase{"m50", st, u, m50Decode})
		}
	}
	var sub []matrixCase
	for i, c := range cases {
		if keep(i) {
			sub = append(sub, c)
		}
	}
	return sub
}

// Selections of matrixCases. Every third case still has layer and position bisection in
// it. everyOther keeps 30: embed_out's three, then of each stage an untraced position at a
// traced layer (position search) and a decode position at an untraced layer (layer
// bisection), and logits at decode.
func allCases(int) bool     { return true }
func everyThird(i int) bool { return i%3 == 0 }
func everyOther(i int) bool { return i < 3 || i%2 == 0 }

// matrixBackendEnv names the backend the matrix injects into (default cpu). Any other
// backend is compared with its own clean live run, so the policy stays exact on one device:
// GRETA_MATRIX_BACKEND=hip proves the GPU localises like the CPU.
const matrixBackendEnv = "GRETA_MATRIX_BACKEND"

// TestSelfBisectMatrix injects a fault at each case's stage, layer and position into the
// CPU reference running the tiny model and checks that the reported origin and category are
// exactly the injected ones. The 50-token cases compare with a live reference run shared by
// all of them; the standard-prompt cases compare with the committed goldens.
func TestSelfBisectMatrix(t *testing.T) {
	// A long prompt costs seconds per run: these three need four runs in all.
	runMatrix(t, model.TinySpec, 0, allCases,
		matrixCase{prompts.P6Len16, golden.KPostRope, 3, p6Len16Crit}, // GRETA_INJECT's example
		matrixCase{prompts.P6Len16, golden.AttnIn, 4, p6Len16Crit},
		matrixCase{prompts.P6Len32, golden.QPostRope, 1, p6Len32Crit},
	)
}

// TestSelfBisectMatrixFamilies is the matrix on the Llama 3 and Qwen2 models (tiny-llama3,
// tiny-qwen2): every other case of the 50-token prompt's, with the layers rotated
// differently from tiny's and from the other family's: 30 cases per family, 19 under
// -short. It has no case on the long prompts: each costs 15 to 25 s with its shape runs,
// and tiny's cover how self-bisection uses the goldens there. The race detector skips it:
// tiny's matrix runs the same code, and this one would take minutes more.
func TestSelfBisectMatrixFamilies(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector runs tiny's matrix, the same code")
	}
	for i, spec := range model.EmbeddedSpecs()[1:] {
		t.Run(spec, func(t *testing.T) {
			runMatrix(t, spec, 2*i+1, everyOther)
		})
	}
}

// runMatrix runs the matrixCases that keep selects and the long cases on the embedded model
// spec, each case a parallel subtest. -short runs every third 50-token case and no long
// one.
func runMatrix(t *testing.T, spec string, rot int, keep func(int) bool, long ...matrixCase) {
	backend := cmp.Or(os.Getenv(matrixBackendEnv), "cpu")
	m, byID := modelPrompts(t, spec)
	if testing.Short() {
		keep, long = everyThird, nil
	}
	cases := append(matrixCases(m.Config.NLayer, rot, keep), long...)
	cache := NewCache()
	start := time.Now()
	var mu sync.Mutex
	stats := map[string]int{}
	t.Cleanup(func() {
		if !t.Failed() && (stats["layerCases"] == 0 || stats["posCases"] == 0) {
			t.Errorf("the matrix exercised layer bisection in %d cases and position search in %d: want both", stats["layerCases"], stats["posCases"])
		}
		t.Logf("%s: %d cases in %v; extra runs: %d over layers, %d over positions; %d cases used layer bisection, %d position search",
			spec, len(cases), time.Since(start).Round(time.Millisecond), stats["layerRuns"], stats["posRuns"], stats["layerCases"], stats["posCases"])
	})
	for _, c := range cases {
		name := fmt.Sprintf("%s/%s/layer%d/pos%d", c.prompt, c.stage, c.layer, c.pos)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := engine.Fault{Stage: c.stage, Layer: c.layer, PosMin: c.pos, PosMax: -1, Scale: matrixScale}
			opts := []Option{LoadedModel(spec, m), Backend(backend), Inject(f), Share(cache),
				NoArtifacts(), Env(func(string) string { return "" }), Update(false)}
			if c.prompt == "m50" { // the standard prompts' goldens were recorded with the default plan
				opts = append(opts, MaxNewTokens(3))
			}
			if c.prompt == "m50" || backend != "cpu" {
				opts = append(opts, Baseline(), Reference(backend))
			}
			tb := &fakeTB{name: "TestB361"}
			rep := Bisect(tb, []Prompt{byID[c.prompt]}, opts...)
			pr := rep.Prompts[0]
			if pr.Origin == nil {
				t.Fatalf("no origin isolated; reported:\n%s", strings.Join(tb.errors, "\n"))
			}
			want := fmt.Sprintf("pos=%d layer=%d tensor=%s category=%s", c.pos, golden.LayerOf(c.stage, c.layer, m.Config.NLayer), c.stage, c.stage.Category())
			if got := pr.Origin.String(); got != want {
				t.Errorf("origin %s, want %s\n%s", got, want, strings.Join(tb.errors, "\n"))
			}
			if !strings.HasPrefix(pr.Line, c.prompt+": FIRST_FAIL "+want+" (") {
				t.Errorf("first line %q does not name the origin %s", pr.Line, want)
			}
			checkLayerRuns(t, pr, trace.DefaultLayers)
			// The shape at the origin is the planted scale, from the planted position on.
			if sh := pr.Shape; sh == nil || sh.Kind.Name != golden.KindScale || math.Abs(sh.Kind.Factor-matrixScale) > 1e-5 ||
				sh.Positions.First != c.pos || sh.Channels.Pattern != golden.ChannelsAll {
				t.Errorf("shape %v, want a uniform scale x%g of every channel from position %d (%v)", shapeLineOf(pr), matrixScale, c.pos, pr.ShapeErr)
			}
			mu.Lock()
			defer mu.Unlock()
			stats["layerRuns"] += pr.Origin.LayerRuns
			stats["posRuns"] += pr.Origin.PositionRuns
			if pr.Origin.LayerRuns > 0 {
				stats["layerCases"]++
			}
			if pr.Origin.PositionRuns > 0 {
				stats["posCases"]++
			}
		})
	}
}

// modelPrompts opens the embedded model spec and names the prompts the planted-fault tests
// use: m50 (the first 50 tokens of p6_len_16) and the standard prompts.
func modelPrompts(t *testing.T, spec string) (*model.Model, map[string]Prompt) {
	t.Helper()
	m, err := model.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	p16, err := prompts.Standard(prompts.P6Len16, m.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Prompt{"m50": TokenPrompt("m50", p16.Tokens[:m50Len]...)}
	for _, p := range StandardPrompts() {
		byID[p.ID] = p
	}
	return m, byID
}

// shapeLineOf is the shape's line, or "none".
func shapeLineOf(pr *PromptReport) string {
	if pr.Shape == nil {
		return "none"
	}
	return pr.Shape.Line()
}
