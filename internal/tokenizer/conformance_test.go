package tokenizer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/internal/corpus"
	"github.com/gretabisect/gretabisect/internal/gguf"
	_ "github.com/gretabisect/gretabisect/internal/testutil"
)

// vocabDir is the shared llama.cpp vocabulary test data, next to the checkout.
const vocabDir = "../../../shared/testdata/vocab"

const llamaSPM = "ggml-vocab-llama-spm.gguf"

// llamaTokenizer loads the real 32000-token Llama vocabulary, or skips the test.
func llamaTokenizer(tb testing.TB) *Tokenizer {
	tb.Helper()
	path := filepath.Join(vocabDir, llamaSPM)
	if _, err := os.Stat(path); err != nil {
		tb.Skipf("llama.cpp vocabulary test data not found at %s (it lives in ../shared/testdata/vocab next to the checkout): %v", path, err)
	}
	tok, err := openTokenizer(path)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func openTokenizer(path string) (*Tokenizer, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tok, err := FromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tok, nil
}

type vocabCase struct {
	text string
	want []int32
}

// readVocabCases reads the .inp/.out pair as its README describes: inputs split on
// "\n__ggml_vocab_test__\n" (the trailing empty piece is not a case), one line of ids each.
func readVocabCases(t *testing.T, base string) []vocabCase {
	t.Helper()
	inp, err := os.ReadFile(base + ".inp")
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(base + ".out")
	if err != nil {
		t.Fatal(err)
	}
	texts := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
	if texts[len(texts)-1] != "" {
		t.Fatalf("%s.inp does not end with a separator", base)
	}
	texts = texts[:len(texts)-1]
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("%s: %d inputs but %d output lines", base, len(texts), len(lines))
	}
	cases := make([]vocabCase, len(texts))
	for i, text := range texts {
		want := []int32{}
		for _, f := range strings.Fields(lines[i]) {
			id, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				t.Fatalf("%s.out line %d: %v", base, i+1, err)
			}
			want = append(want, int32(id))
		}
		cases[i] = vocabCase{text, want}
	}
	return cases
}

// TestLlamaConformance runs llama.cpp's own test vectors for the Llama SPM vocabulary:
// ids without BOS and without special-token parsing, as test-tokenizer-0 produces them.
func TestLlamaConformance(t *testing.T) {
	checkVocabCases(t, llamaTokenizer(t), filepath.Join(vocabDir, llamaSPM))
}

// checkVocabCases checks that tok encodes each of the 46 cases of base.inp/.out to the
// expected ids, and decodes the expected ids back to the text.
func checkVocabCases(t *testing.T, tok *Tokenizer, base string) {
	t.Helper()
	cases := readVocabCases(t, base)
	if len(cases) != 46 {
		t.Errorf("read %d cases, the README announces 46", len(cases))
	}
	failed := 0
	for i, c := range cases {
		got := tok.Encode(c.text, false, false)
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("case %d %q: Encode (-want +got):\n%s", i, c.text, diff)
			failed++
		}
		if back := tok.Decode(c.want); back != c.text {
			t.Errorf("case %d %q: Decode = %q", i, c.text, back)
		}
	}
	t.Logf("%s: %d of %d cases encode as llama.cpp does", filepath.Base(base), len(cases)-failed, len(cases))
}

// TestLlamaSpecial checks the parts of the real vocabulary the vectors leave out: BOS from
// metadata, parsed control tokens and the space prefix after them.
func TestLlamaSpecial(t *testing.T) {
	tok := llamaTokenizer(t)
	if tok.BOS() != 1 || tok.EOS() != 2 || tok.Size() != 32000 {
		t.Fatalf("BOS %d EOS %d Size %d, want 1 2 32000", tok.BOS(), tok.EOS(), tok.Size())
	}
	hello := tok.Encode("Hello", false, false)
	cases := []struct {
		text         string
		add, special bool
		want         []int32
	}{
		{"Hello", true, false, append([]int32{1}, hello...)},
		{"", true, false, []int32{1}},
		{"<s>Hello", false, true, append([]int32{1}, hello...)},
		{"Hello</s>", true, true, append(append([]int32{1}, hello...), 2)},
		{"<unk>", false, true, []int32{0}},
	}
	for _, c := range cases {
		got := tok.Encode(c.text, c.add, c.special)
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("Encode(%q, %v, %v) (-want +got):\n%s", c.text, c.add, c.special, diff)
		}
	}
	if got := tok.Encode("<s>", false, false); len(got) == 1 && got[0] == 1 {
		t.Errorf("Encode(%q) without parseSpecial = %v, the control token", "<s>", got)
	}
}

// BenchmarkEncodeLlama encodes the first 10 KB of the bundled English corpus with the real
// 32000-token Llama vocabulary.
func BenchmarkEncodeLlama(b *testing.B) { benchmarkEncode(b, llamaTokenizer(b)) }

// BenchmarkEncodeLlama3 does the same with the real 128256-token Llama 3 vocabulary.
func BenchmarkEncodeLlama3(b *testing.B) { benchmarkEncode(b, hfTokenizer(b, "llama3")) }

func benchmarkEncode(b *testing.B, tok *Tokenizer) {
	text := corpus.Text[:10<<10]
	b.SetBytes(int64(len(text)))
	var n int
	for b.Loop() {
		n = len(tok.Encode(text, true, false))
	}
	b.ReportMetric(float64(n), "tokens/op")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/op")
}

// TestGPT2Conformance runs llama.cpp's test vectors for the GPT-2 byte-level vocabulary
// (pre-tokenizer "gpt-2").
func TestGPT2Conformance(t *testing.T) {
	path := filepath.Join(vocabDir, "ggml-vocab-gpt-2.gguf")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("llama.cpp vocabulary test data not found at %s: %v", path, err)
	}
	tok, err := openTokenizer(path)
	if err != nil {
		t.Fatal(err)
	}
	checkVocabCases(t, tok, path)
}

// TestLlama3Conformance runs llama.cpp's test vectors for Llama 3 ("llama-bpe") on the
// vocabulary converted from the Llama 3 tokenizer.json.
func TestLlama3Conformance(t *testing.T) {
	checkVocabCases(t, hfTokenizer(t, "llama3"), filepath.Join(vocabDir, "ggml-vocab-llama-bpe.gguf"))
}

// TestQwen2Conformance runs llama.cpp's test vectors for Qwen2 ("qwen2") on the vocabulary
// converted from the Qwen3 tokenizer.json: Qwen 1.5 to 3 share their regular vocabulary
// and merges; Qwen3 only adds special tokens, after the regular ones.
func TestQwen2Conformance(t *testing.T) {
	checkVocabCases(t, hfTokenizer(t, "qwen3"), filepath.Join(vocabDir, "ggml-vocab-qwen2.gguf"))
}

// moduleRoot returns the folder holding go.mod above the package.
func moduleRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("no go.mod above the package")
		}
		dir = parent
	}
}

// hfDir returns the folder of one tokenizer that scripts/fetch-tokenizers.sh installs
// ($GRETA_TOKENIZERS/name, by default .cache/tokenizers/name in the module root), or skips.
func hfDir(tb testing.TB, name string) string {
	tb.Helper()
	dir, err := hfFiles(tb, name)
	if err != nil {
		tb.Skipf("tokenizer files not available (scripts/fetch-tokenizers.sh installs them): %v", err)
	}
	return dir
}

// hfFiles returns the folder of tokenizer name, or why it is not there. Under -short it is
// never there: converting a tokenizer takes seconds (a minute under -race).
func hfFiles(tb testing.TB, name string) (string, error) {
	if testing.Short() {
		return "", errors.New("not converted under -short")
	}
	base := os.Getenv("GRETA_TOKENIZERS")
	if base == "" {
		base = filepath.Join(moduleRoot(tb), ".cache", "tokenizers")
	}
	dir := filepath.Join(base, name)
	_, err := os.Stat(filepath.Join(dir, "tokenizer.json"))
	return dir, err
}

// hfTokenizers caches the converted tokenizers by folder: each takes a second to build.
var hfTokenizers sync.Map // string -> func() (*Tokenizer, error)

// hfTokenizer returns the tokenizer converted from the tokenizer.json in hfDir(name).
func hfTokenizer(tb testing.TB, name string) *Tokenizer {
	tb.Helper()
	dir := hfDir(tb, name)
	build, _ := hfTokenizers.LoadOrStore(dir, sync.OnceValues(func() (*Tokenizer, error) {
		tj, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
		if err != nil {
			return nil, err
		}
		cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
		if err != nil {
			return nil, err
		}
		return FromHF(tj, cfg)
	}))
	tok, err := build.(func() (*Tokenizer, error))()
	if err != nil {
		tb.Fatalf("%s: %v", dir, err)
	}
	return tok
}
