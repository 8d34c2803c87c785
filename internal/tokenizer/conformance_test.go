package tokenizer

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	tok := llamaTokenizer(t)
	cases := readVocabCases(t, filepath.Join(vocabDir, llamaSPM))
	if len(cases) != 46 {
		t.Errorf("read %d cases, the README announces 46", len(cases))
	}
	for i, c := range cases {
		got := tok.Encode(c.text, false, false)
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("case %d %q: Encode (-want +got):\n%s", i, c.text, diff)
		}
		if back := tok.Decode(c.want); back != c.text {
			t.Errorf("case %d %q: Decode = %q", i, c.text, back)
		}
	}
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
// vocabulary.
func BenchmarkEncodeLlama(b *testing.B) {
	tok := llamaTokenizer(b)
	text := corpus.Text[:10<<10]
	b.SetBytes(int64(len(text)))
	var n int
	for b.Loop() {
		n = len(tok.Encode(text, true, false))
	}
	b.ReportMetric(float64(n), "tokens/op")
}
