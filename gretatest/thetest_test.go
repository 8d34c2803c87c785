package gretatest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sebdah/goldie/v2"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
)

// recordToyGolden writes the toy engine's golden trace of toyPrompt under root, as -update
// would, and returns its path.
func recordToyGolden(t *testing.T, root string) string {
	t.Helper()
	tb := &fakeTB{name: "TestTheTest"}
	rep := Bisect(tb, []Prompt{toyPrompt()}, toyGoldenOptions(t, root, Update(true))...)
	if len(tb.errors) > 0 || !rep.Prompts[0].Recorded {
		t.Fatalf("recording the golden: %q", tb.errors)
	}
	return rep.Prompts[0].Baseline
}

// toyGoldenOptions compares the toy engine with golden files under root, whatever -update
// says (it re-records this package's goldie files, not these).
func toyGoldenOptions(t *testing.T, root string, extra ...Option) []Option {
	return append([]Option{
		LoadedModel("toy", toyModel()), Backend("toy"), Reference("toy"), GoldenDir(root), Update(false),
		Critical(), MaxNewTokens(3), Artifacts(t.TempDir()), Env(func(string) string { return "" }),
	}, extra...)
}

// masked replaces what changes between runs (folders, dates) in a failure message.
func masked(msg string, dirs map[string]string) string {
	for dir, name := range dirs {
		msg = strings.ReplaceAll(msg, dir, name)
	}
	return regexp.MustCompile(`/\d{4}-\d{2}-\d{2}/`).ReplaceAllString(msg, "/<date>/")
}

// checkOriginJSON checks that the JSON report at path names TestTheTest's injected origin.
func checkOriginJSON(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		PosID      int    `json:"pos_id"`
		Layer      int    `json:"layer"`
		TensorName string `json:"tensor_name"`
		Category   string `json:"category"`
	}
	var rep struct {
		Prompts []struct {
			FirstFail   key `json:"first_fail"`
			FirstTraced key `json:"first_traced"`
			Origin      struct {
				LayerRuns    int `json:"layer_runs"`
				PositionRuns int `json:"position_runs"`
				Runs         []struct {
					Kind string `json:"kind"`
				} `json:"runs"`
			} `json:"origin"`
		} `json:"prompts"`
		Categories map[string]int `json:"categories"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(rep.Prompts) != 1 {
		t.Fatalf("%s: %d prompts", path, len(rep.Prompts))
	}
	p := rep.Prompts[0]
	want := key{33, 3, "k_post_rope", "ATTENTION_MECHANISM"}
	if p.FirstFail != want {
		t.Errorf("%s: first_fail %+v, want %+v", path, p.FirstFail, want)
	}
	if traced := (key{34, 4, "residual_pre_attn", "ROUTING/SELECTION"}); p.FirstTraced != traced {
		t.Errorf("%s: first_traced %+v, want %+v", path, p.FirstTraced, traced)
	}
	if o := p.Origin; o.LayerRuns != 1 || o.PositionRuns != 1 || len(o.Runs) != 2 || o.Runs[0].Kind != golden.RunLayers || o.Runs[1].Kind != golden.RunPositions {
		t.Errorf("%s: origin %+v", path, o)
	}
	if rep.Categories["ATTENTION_MECHANISM"] != 1 || rep.Categories["ROUTING/SELECTION"] != 0 {
		t.Errorf("%s: categories %v", path, rep.Categories)
	}
}

// TestTheTest checks Bisect's exact failure messages with a fake TB.
func TestTheTest(t *testing.T) {
	root := t.TempDir()
	path := recordToyGolden(t, root)
	if want := filepath.Join(root, "toy", "toy", "toy50_trace.jsonl"); path != want {
		t.Fatalf("golden recorded at %s, want %s", path, want)
	}
	art := t.TempDir()
	dirs := map[string]string{root: "$GOLDEN", art: "$ARTIFACTS"}

	t.Run("pass", func(t *testing.T) {
		tb := &fakeTB{name: "TestTheTest"}
		rep := Bisect(tb, []Prompt{toyPrompt()}, toyGoldenOptions(t, root)...)
		if len(tb.errors) != 0 {
			t.Fatalf("errors on a clean run: %q", tb.errors)
		}
		pr := rep.Prompts[0]
		if pr.Compared == 0 || pr.Policy != "exact" || pr.Line != "" || pr.Origin != nil {
			t.Errorf("clean run: compared %d, policy %q, line %q, origin %v", pr.Compared, pr.Policy, pr.Line, pr.Origin)
		}
	})

	t.Run("inject", func(t *testing.T) {
		// Layer 3 and position 33 are untraced: layer bisection, then the position search.
		tb := &fakeTB{name: "TestTheTest"}
		Bisect(tb, []Prompt{toyPrompt()}, toyGoldenOptions(t, root, InjectSpec("stage=k_post_rope,layer=3,pos>=33,scale=1.5"), Artifacts(art))...)
		if len(tb.errors) != 1 {
			t.Fatalf("got %d errors, want 1: %q", len(tb.errors), tb.errors)
		}
		msg := masked(tb.errors[0], dirs)
		first, _, _ := strings.Cut(msg, "\n")
		wantFirst := regexp.MustCompile(`^toy50: FIRST_FAIL pos=33 layer=3 tensor=k_post_rope category=ATTENTION_MECHANISM \(hash [0-9a-f]{8}\.\. want [0-9a-f]{8}\.\., MAE [0-9.e+-]+, rel_l2 [0-9.e+-]+\)$`)
		if !wantFirst.MatchString(first) {
			t.Errorf("first line %q, want it to match %s", first, wantFirst)
		}
		// go-cmp's output is deliberately unstable: the record diff is checked, not pinned.
		diffStart, diffEnd := strings.Index(msg, "traced record (-want +got):"), strings.Index(msg, "candidate toy vs")
		if diffStart < 0 || diffEnd < diffStart || !strings.Contains(msg[diffStart:diffEnd], "Hash:") {
			t.Fatalf("no record diff showing the hash in:\n%s", msg)
		}
		pinned := msg[:diffStart] + msg[diffEnd:]
		goldie.New(t, goldie.WithFixtureDir("testdata"), goldie.WithNameSuffix(".golden")).
			Assert(t, "TestTheTest_inject", []byte(pinned+"\n"))
		for _, p := range []string{"toy50_report.md", "toy50_report.json", "toy50_report.html", "traces/toy50_trace.jsonl", "baseline/toy50_trace.jsonl"} {
			if !strings.Contains(msg, "$ARTIFACTS/<date>/b3_61/"+p) {
				t.Errorf("message does not name %s", p)
			}
		}
		md, err := filepath.Glob(filepath.Join(art, "*", "b3_61", "toy50_report.md"))
		if err != nil || len(md) != 1 {
			t.Fatalf("Markdown report: %v %v", md, err)
		}
		b, err := os.ReadFile(md[0])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("Isolated origin (FIRST_FAIL): pos=33 layer=3 tensor=k_post_rope category=ATTENTION_MECHANISM")) {
			t.Errorf("report lacks the isolated origin:\n%s", b)
		}
		// The JSON reports (the prompt's and the run's) name the origin, not the first traced
		// failure, and count its category.
		for _, name := range []string{"toy50_report.json", "report.json"} {
			checkOriginJSON(t, filepath.Join(filepath.Dir(md[0]), name))
		}
	})

	t.Run("missing golden", func(t *testing.T) {
		tb := &fakeTB{name: "TestB361"}
		empty := t.TempDir()
		Bisect(tb, []Prompt{toyPrompt()}, toyGoldenOptions(t, empty)...)
		want := []string{"toy50: no golden trace " + filepath.Join(empty, "toy", "toy", "toy50_trace.jsonl") +
			"; record it with: go test ./gretatest -run 'TestB361/toy50' -update"}
		if diff := cmp.Diff(want, tb.errors); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
		// A model chosen by GRETA_MODEL is part of the command.
		tb = &fakeTB{name: "TestB361"}
		Bisect(tb, []Prompt{toyPrompt()}, toyGoldenOptions(t, empty, LoadedModel("", toyModel()), Env(func(k string) string {
			if k == EnvModel {
				return "/models/tiny llama.gguf"
			}
			return ""
		}))...)
		want = []string{"toy50: no golden trace " + filepath.Join(empty, "toy", "tiny llama", "toy50_trace.jsonl") +
			"; record it with: GRETA_MODEL='/models/tiny llama.gguf' go test ./gretatest -run 'TestB361/toy50' -update"}
		if diff := cmp.Diff(want, tb.errors); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
	})

	t.Run("other device", func(t *testing.T) {
		// toygpu has no golden of its own: the toy goldens are compared with tolerance.
		tb := &fakeTB{name: "TestTheTest"}
		rep := Bisect(tb, []Prompt{toyPrompt()}, toyGoldenOptions(t, root, Backend("toygpu"))...)
		pr := rep.Prompts[0]
		if len(tb.errors) != 0 || pr.Policy != golden.Tolerance.Name || pr.Baseline != path {
			t.Errorf("toygpu against %s under %q: %q", pr.Baseline, pr.Policy, tb.errors)
		}
		// Its hashes differ: the table says the match is within tolerance.
		var sum strings.Builder
		if err := rep.WriteSummary(&sum); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("| toy50 | - | - | (%d records match) | within tolerance | - | N |", pr.Compared); !strings.Contains(sum.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum.String())
		}
		// A fault on the other device is isolated under tolerance, re-runs against the live
		// reference included.
		tb = &fakeTB{name: "TestTheTest"}
		rep = Bisect(tb, []Prompt{toyPrompt()}, toyGoldenOptions(t, root, Backend("toygpu"),
			Inject(engine.Fault{Stage: golden.MLPOut, Layer: 6, PosMin: 16, PosMax: 16, Scale: 1.5}))...)
		want := "toy50: FIRST_FAIL pos=16 layer=6 tensor=mlp_out category=MLP_OUTPUT ("
		if pr := rep.Prompts[0]; !strings.HasPrefix(pr.Line, want) || pr.Policy != golden.Tolerance.Name {
			t.Errorf("line %q under %q, want %q...: %q", pr.Line, pr.Policy, want, tb.errors)
		}
		// An exact comparison of the same run fails: the jitter changed the bits.
		tb = &fakeTB{name: "TestTheTest"}
		Bisect(tb, []Prompt{toyPrompt()}, toyGoldenOptions(t, root, Backend("toygpu"), Policy(golden.Exact), NoSelfBisect())...)
		if len(tb.errors) != 1 || !strings.HasPrefix(tb.errors[0], "toy50: FIRST_FAIL pos=0 layer=0 tensor=attn_out category=ATTENTION_MECHANISM") {
			t.Errorf("exact policy on toygpu: %q", tb.errors)
		}
	})

	t.Run("refuse to record faults", func(t *testing.T) {
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		tb := &fakeTB{name: "TestTheTest"}
		Bisect(tb, []Prompt{toyPrompt()}, toyGoldenOptions(t, root, Update(true),
			Inject(engine.Fault{Stage: golden.V, Layer: 1, PosMax: -1, Scale: 2}))...)
		want := []string{"toy50: refusing to record " + path + " with faults injected (stage=v,layer=1,scale=2)"}
		if diff := cmp.Diff(want, tb.errors); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
		after, _ := os.ReadFile(path)
		if !bytes.Equal(before, after) {
			t.Errorf("the golden file changed")
		}
	})

	t.Run("failed run keeps the golden", func(t *testing.T) {
		// The exec backend's goldens live under device "exec"; its command fails.
		execGolden := filepath.Join(root, "exec", "toy", "toy50_trace.jsonl")
		if err := os.MkdirAll(filepath.Dir(execGolden), 0o755); err != nil {
			t.Fatal(err)
		}
		before := []byte("the old golden\n")
		if err := os.WriteFile(execGolden, before, 0o644); err != nil {
			t.Fatal(err)
		}
		tb := &fakeTB{name: "TestTheTest"}
		Bisect(tb, []Prompt{toyPrompt()}, toyGoldenOptions(t, root, Update(true), Backend("exec:false"))...)
		want := "toy50: refusing to record " + execGolden + " from a run that ended early: CRASH before the first planned record, embed_out pos 0, the token embedding (exit status 1: no output; 0 of 3417 planned records written; log "
		if len(tb.errors) != 1 || !strings.HasPrefix(tb.errors[0], want) || !strings.HasSuffix(tb.errors[0], filepath.Join("b3_61", "run", "toy50.log)")) {
			t.Errorf("errors %q, want one starting %q", tb.errors, want)
		}
		after, _ := os.ReadFile(execGolden)
		if !bytes.Equal(before, after) {
			t.Errorf("the golden file changed to %q", after)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, c := range []struct {
			opts []Option
			want string
		}{
			{[]Option{Layers(-1)}, "gretatest: gretatest.Layers: layer -1 is negative"},
			{[]Option{InjectSpec("stage=v,pos>=x,scale=2")}, `gretatest: gretatest.InjectSpec: fault 1 "stage=v,pos>=x,scale=2": field "pos": "x" is not a non-negative integer`},
			{[]Option{Env(func(k string) string {
				if k == EnvInject {
					return "stage=q,scale=2"
				}
				return ""
			})}, `gretatest: GRETA_INJECT: fault 1 "stage=q,scale=2": field "stage": unknown stage "q"`},
			{[]Option{Backend("nope")}, `gretatest: backend "nope": engine: unknown backend "nope" (known: `},
		} {
			tb := &fakeTB{name: "TestTheTest"}
			Bisect(tb, []Prompt{toyPrompt()}, append(toyGoldenOptions(t, root), c.opts...)...)
			if len(tb.errors) != 1 || !strings.HasPrefix(tb.errors[0], c.want) {
				t.Errorf("errors %q, want one starting with %q", tb.errors, c.want)
			}
		}
		tb := &fakeTB{name: "TestTheTest"}
		Bisect(tb, nil, toyGoldenOptions(t, root)...)
		if diff := cmp.Diff([]string{"gretatest: no prompts: a bisect must compare something"}, tb.errors); diff != "" {
			t.Errorf("no prompts (-want +got):\n%s", diff)
		}
	})
}

// TestGoldenDeterministic records the same golden twice: the bytes must not change, and the
// volatile fields must be blank.
func TestGoldenDeterministic(t *testing.T) {
	root := t.TempDir()
	path := recordToyGolden(t, root)
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recordToyGolden(t, root)
	second, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Errorf("two recordings differ")
	}
	tr, err := golden.ReadTrace(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range tr.Records {
		if r.Timestamp != "" || r.GitCommitHash != "" {
			t.Fatalf("record %s keeps volatile fields: %q %q", golden.KeyOf(r), r.Timestamp, r.GitCommitHash)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}
