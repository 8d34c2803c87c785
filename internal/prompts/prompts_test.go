package prompts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/internal/gguf"
	_ "github.com/gretabisect/gretabisect/internal/testutil"
	"github.com/gretabisect/gretabisect/internal/tokenizer"
)

// byteEncoder is a vocabulary of single bytes shifted by 3 (0..2 are special), BOS 1: the
// finest tokenization there is.
type byteEncoder struct{}

func (byteEncoder) Encode(text string, addSpecial, _ bool) []int32 {
	var out []int32
	if addSpecial {
		out = append(out, 1)
	}
	for i := 0; i < len(text); i++ {
		out = append(out, int32(text[i])+3)
	}
	return out
}

// wordEncoder maps each space-separated word to one token: a coarse vocabulary.
type wordEncoder struct{}

func (wordEncoder) Encode(text string, addSpecial, _ bool) []int32 {
	var out []int32
	if addSpecial {
		out = append(out, 1)
	}
	for range strings.Fields(text) {
		out = append(out, 7)
	}
	return out
}

func TestStandardLengths(t *testing.T) {
	for _, enc := range []Encoder{byteEncoder{}, wordEncoder{}} {
		all, err := All(enc)
		if err != nil {
			t.Fatalf("%T: %v", enc, err)
		}
		var got []int
		for _, p := range all {
			got = append(got, len(p.Tokens))
			if p.Tokens[0] != 1 {
				t.Errorf("%T %s starts with %d, want BOS", enc, p.ID, p.Tokens[0])
			}
		}
		if diff := cmp.Diff([]int{5, 827, 1653}, got); diff != "" {
			t.Errorf("%T lengths (-want +got):\n%s", enc, diff)
		}
	}
	p, _ := Standard(P6Len16, byteEncoder{})
	want := byteEncoder{}.Encode("The river was quiet that morning.", true, false)[:20]
	if !cmp.Equal(want, p.Tokens[:20]) {
		t.Errorf("p6_len_16 does not start at the corpus's beginning: %v", p.Tokens[:20])
	}
}

// shortEncoder gives three tokens for any text.
type shortEncoder struct{}

func (shortEncoder) Encode(string, bool, bool) []int32 { return []int32{1, 2, 3} }

func TestStandardErrors(t *testing.T) {
	if _, err := Standard(P0Short, shortEncoder{}); err == nil || !strings.Contains(err.Error(), "p0_short needs 5 tokens, its text gives only 3") {
		t.Errorf("short text: %v", err)
	}
	if _, err := Standard("p9", byteEncoder{}); err == nil || !strings.Contains(err.Error(), `unknown standard prompt "p9" (known: p0_short, p6_len_16, p6_len_32)`) {
		t.Errorf("unknown id: %v", err)
	}
	if n, ok := Len(P6Len32); !ok || n != 1653 {
		t.Errorf("Len(p6_len_32) = %d, %v", n, ok)
	}
}

func TestCustom(t *testing.T) {
	p, err := ParseTokens("mine", "1, 15043,3186")
	if want := (Prompt{"mine", []int32{1, 15043, 3186}}); err != nil || !cmp.Equal(want, p) {
		t.Errorf("ParseTokens = %v, %v", p, err)
	}
	for _, bad := range []string{"1,,2", "1,-4", "x", "99999999999"} {
		if _, err := ParseTokens("mine", bad); err == nil || !strings.Contains(err.Error(), "mine: token") {
			t.Errorf("ParseTokens(%q) error %v", bad, err)
		}
	}
	p, err = FromText("hi", "ab", byteEncoder{})
	if err != nil || !cmp.Equal([]int32{1, 'a' + 3, 'b' + 3}, p.Tokens) {
		t.Errorf("FromText = %v, %v", p, err)
	}
	if _, err := FromText("hi", "", byteEncoder{}); err == nil {
		t.Error("FromText of empty text succeeded")
	}
}

// TestLlamaVocabLengths checks the lengths under the real 32000-token Llama vocabulary.
func TestLlamaVocabLengths(t *testing.T) {
	path := filepath.Join("..", "..", "..", "shared", "testdata", "vocab", "ggml-vocab-llama-spm.gguf")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("llama vocabulary not found at %s: %v", path, err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	all, err := All(tok)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		n, _ := Len(p.ID)
		if len(p.Tokens) != n || p.Tokens[0] != tok.BOS() {
			t.Errorf("%s: %d tokens starting %d, want %d starting with BOS %d", p.ID, len(p.Tokens), p.Tokens[0], n, tok.BOS())
		}
	}
	t.Logf("p0_short under llama: %q", tok.Decode(all[0].Tokens))
}
