package gretatest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/synth"
)

// TestManifest checks the provenance of goldens: -update writes the same manifest twice, and
// a run made with another plan, prompt, model, tokenizer or kernel variant than the golden's
// is refused in one line naming both sides, instead of reporting a numerical divergence.
func TestManifest(t *testing.T) {
	root := t.TempDir()
	path := recordToyGolden(t, root)
	mpath := filepath.Join(filepath.Dir(path), ManifestFile)
	first, err := os.ReadFile(mpath)
	if err != nil {
		t.Fatal(err)
	}
	recordToyGolden(t, root)
	if again, _ := os.ReadFile(mpath); !bytes.Equal(first, again) {
		t.Errorf("-update twice wrote different manifests:\n%s\n%s", first, again)
	}
	m, err := readManifest(mpath)
	if err != nil {
		t.Fatal(err)
	}
	e := m.Prompts["toy50"]
	if e.Prompt.Tokens != 50 || e.Backend.Name != "toy" || e.Backend.Device != "toy" || e.Plan.MaxNewTokens != 3 ||
		e.Version != Version || m.Tool != "gretabisect" {
		t.Errorf("manifest entry %+v", e)
	}

	bisect := func(t *testing.T, p Prompt, opts ...Option) (errs, logs []string) {
		tb := &fakeTB{name: "TestManifest"}
		Bisect(tb, []Prompt{p}, toyGoldenOptions(t, root, opts...)...)
		return tb.errors, tb.logs
	}
	refused := func(t *testing.T, errs []string, what string) {
		t.Helper()
		if len(errs) != 1 || strings.Contains(errs[0], "\n") || strings.Contains(errs[0], "FIRST_FAIL") ||
			!strings.Contains(errs[0], "golden recorded with "+what) || !strings.Contains(errs[0], "; re-record it with: go test ") {
			t.Errorf("errors %q, want one line: golden recorded with %s ...", errs, what)
		}
	}
	t.Run("same", func(t *testing.T) {
		if errs, _ := bisect(t, toyPrompt()); len(errs) != 0 {
			t.Errorf("a run like the golden's: %q", errs)
		}
	})
	t.Run("plan", func(t *testing.T) {
		// A plan choosing fewer rows (layers, generated tokens) is compared on them.
		if errs, _ := bisect(t, toyPrompt(), Layers(0, 1), MaxNewTokens(1)); len(errs) != 0 {
			t.Errorf("a plan the golden covers: %q", errs)
		}
		errs, _ := bisect(t, toyPrompt(), Layers(0, 3))
		refused(t, errs, `plan "layers 0,1,2,4,8, positions last,windows, stages all, phases prefill+decode, 3 new tokens", this run uses "layers 0,3,`)
	})
	t.Run("prompt", func(t *testing.T) {
		toks := make([]int32, 50)
		errs, _ := bisect(t, TokenPrompt("toy50", toks...))
		refused(t, errs, "prompt tokens sha256 ")
	})
	t.Run("variant", func(t *testing.T) {
		errs, _ := bisect(t, toyPrompt(), Backend("toyv2"))
		refused(t, errs, `toy kernel variant "", this run uses "v2"`)
	})
	edit := func(t *testing.T, change func(e *manifestEntry)) {
		t.Helper()
		m, err := readManifest(mpath)
		if err != nil {
			t.Fatal(err)
		}
		e := m.Prompts["toy50"]
		change(&e)
		m.Prompts["toy50"] = e
		b, _ := json.Marshal(m)
		if err := os.WriteFile(mpath, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.WriteFile(mpath, first, 0o644) })
	}
	t.Run("version", func(t *testing.T) {
		edit(t, func(e *manifestEntry) { e.Version = "0.0.1" })
		errs, logs := bisect(t, toyPrompt())
		if len(errs) != 0 || !strings.Contains(strings.Join(logs, "\n"), "golden recorded by gretabisect 0.0.1, this is "+Version) {
			t.Errorf("another version: errors %q, logs %q", errs, logs)
		}
	})
	t.Run("no manifest", func(t *testing.T) {
		if err := os.Remove(mpath); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.WriteFile(mpath, first, 0o644) })
		errs, logs := bisect(t, toyPrompt(), Layers(0, 3))
		if len(errs) != 1 || !strings.Contains(errs[0], "MISSING") || !strings.Contains(strings.Join(logs, "\n"), "no manifest.json beside the golden") {
			t.Errorf("without a manifest: errors %q, logs %q", errs, logs)
		}
	})
}

// TestManifestModelAndTokenizer records goldens of the tiny model and compares a model of
// another seed with them: refused by its sha256, where without the manifest the run would
// report a numerical FIRST_FAIL at embed_out.
func TestManifestModelAndTokenizer(t *testing.T) {
	root := t.TempDir()
	tiny, err := model.Open(model.TinySpec)
	if err != nil {
		t.Fatal(err)
	}
	data, err := synth.Generate(synth.Tiny, synth.F32, 1)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	other, err := model.FromFile(f, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	prompt := TokenPrompt("p", 1, 5, 9, 14)
	opts := func(t *testing.T, m *model.Model, extra ...Option) []Option {
		return append([]Option{LoadedModel("tiny", m), Backend("cpu"), GoldenDir(root), Layers(0), MaxNewTokens(1),
			Artifacts(t.TempDir()), Env(func(string) string { return "" })}, extra...)
	}
	tb := &fakeTB{name: "TestManifestModelAndTokenizer"}
	Bisect(tb, []Prompt{prompt}, opts(t, tiny, Update(true))...)
	if len(tb.errors) != 0 {
		t.Fatal(tb.errors)
	}
	mpath := filepath.Join(root, "cpu", "tiny", ManifestFile)
	m, err := readManifest(mpath)
	if err != nil {
		t.Fatal(err)
	}
	if e := m.Prompts["p"]; e.Model.SHA256 != tiny.File.SHA256() || len(e.Tokenizer) != 64 || e.Model.Config != tiny.Config {
		t.Fatalf("manifest entry %+v", e)
	}

	tb = &fakeTB{name: "TestManifestModelAndTokenizer"}
	Bisect(tb, []Prompt{prompt}, opts(t, other, Update(false))...)
	want := "golden recorded with model sha256 " + tiny.File.SHA256()[:8] + ".., this run uses " + other.File.SHA256()[:8] + "..: not compared"
	if len(tb.errors) != 1 || !strings.Contains(tb.errors[0], want) {
		t.Errorf("another model: %q, want %q", tb.errors, want)
	}

	// The same weights with another vocabulary: simulated in the manifest, the one place
	// that knows the golden's tokenizer.
	b, _ := os.ReadFile(mpath)
	e := m.Prompts["p"]
	fake := strings.Repeat("ab", 32)
	if err := os.WriteFile(mpath, bytes.Replace(b, []byte(e.Tokenizer), []byte(fake), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	tb = &fakeTB{name: "TestManifestModelAndTokenizer"}
	Bisect(tb, []Prompt{prompt}, opts(t, tiny, Update(false))...)
	if want := "golden recorded with tokenizer sha256 abababab.., this run uses " + e.Tokenizer[:8]; len(tb.errors) != 1 || !strings.Contains(tb.errors[0], want) {
		t.Errorf("another tokenizer: %q, want %q", tb.errors, want)
	}

	// Without the manifest the other model's run is compared, and diverges at once.
	if err := os.Remove(mpath); err != nil {
		t.Fatal(err)
	}
	tb = &fakeTB{name: "TestManifestModelAndTokenizer"}
	Bisect(tb, []Prompt{prompt}, opts(t, other, Update(false), NoSelfBisect())...)
	if len(tb.errors) != 1 || !strings.HasPrefix(tb.errors[0], "p: FIRST_FAIL pos=0 layer=-1 tensor=embed_out") {
		t.Errorf("another model without a manifest: %q", tb.errors)
	}
}
