package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/gretabisect/gretabisect/internal/corpus"
)

// fuzzTokenizers returns the tokenizers the fuzz targets run: one trained on the bundled
// corpus, plus the real Llama vocabulary where the shared test data is present.
var fuzzTokenizers = sync.OnceValues(func() ([]*Tokenizer, error) {
	v, err := Train(corpus.Text, 2048)
	if err != nil {
		return nil, err
	}
	trained, err := New(v)
	if err != nil {
		return nil, err
	}
	toks := []*Tokenizer{trained}
	path := filepath.Join(vocabDir, llamaSPM)
	if _, err := os.Stat(path); err == nil {
		llama, err := openTokenizer(path)
		if err != nil {
			return nil, err
		}
		toks = append(toks, llama)
	}
	return toks, nil
})

// addVocabCases seeds f with llama.cpp's test strings, where present.
func addVocabCases(f *testing.F) {
	inp, err := os.ReadFile(filepath.Join(vocabDir, llamaSPM+".inp"))
	if err != nil {
		return
	}
	for _, s := range strings.Split(string(inp), "\n__ggml_vocab_test__\n") {
		f.Add(s)
	}
}

// FuzzEncode checks that Encode never panics, returns ids inside the vocabulary, adds BOS
// as asked, and that Decode gives back valid UTF-8 text without U+2581 (which Decode turns
// into a space). Invalid UTF-8 does not round-trip: a lead byte takes the bytes after it
// into one symbol, which can cut an escaped space in two, as in llama.cpp.
func FuzzEncode(f *testing.F) {
	addVocabCases(f)
	toks, err := fuzzTokenizers()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, tok := range toks {
			plain := tok.Encode(s, false, false)
			for _, special := range []bool{false, true} {
				ids := tok.Encode(s, true, special)
				if len(ids) == 0 || ids[0] != tok.BOS() {
					t.Fatalf("Encode(%q, true, %v) = %v: no BOS first", s, special, ids)
				}
				for _, id := range ids {
					if id < 0 || int(id) >= tok.Size() {
						t.Fatalf("Encode(%q, true, %v) = %v: id %d out of range", s, special, ids, id)
					}
				}
				if !special && !slices.Equal(ids[1:], plain) {
					t.Fatalf("Encode(%q) with BOS = %v, without = %v", s, ids, plain)
				}
			}
			if !utf8.ValidString(s) || strings.Contains(s, spaceMarker) {
				continue
			}
			if got := tok.Decode(plain); got != s {
				t.Fatalf("Decode(Encode(%q)) = %q (ids %v)", s, got, plain)
			}
		}
	})
}

// FuzzTrain checks that Train never panics on valid input, and that on any corpus the
// encoder rebuilds exactly the segmentation training learned, and decodes back.
func FuzzTrain(f *testing.F) {
	f.Fuzz(func(t *testing.T, text string, extra uint16) {
		size := FixedTokens + int(extra%512)
		v, seg, err := train(text, size)
		if err != nil {
			return // invalid UTF-8 and small sizes are refused by name, tested elsewhere
		}
		if len(v.Tokens) > size {
			t.Fatalf("%d tokens for size %d", len(v.Tokens), size)
		}
		tok, err := New(v)
		if err != nil {
			t.Fatalf("New(Train(%q)): %v", text, err)
		}
		ids := tok.Encode(text, false, false)
		want := learned(text, seg)
		if got := pieceTexts(tok, ids); !slices.Equal(want, got) {
			t.Fatalf("Train(%q, %d): encoded %q, learned %q", text, size, got, want)
		}
		if strings.Contains(text, spaceMarker) || !slices.Contains(v.Tokens, spaceMarker) {
			return
		}
		if got := tok.Decode(ids); got != text {
			t.Fatalf("Train(%q, %d): Decode(Encode) = %q", text, size, got)
		}
	})
}

// bpeFuzzTokenizers returns the byte-level tokenizers FuzzEncodeBPE runs: the Llama 3 and
// Qwen2 layouts trained on the bundled corpus, plus GPT-2's and the real Llama 3 and Qwen3
// vocabularies where their files are present.
var bpeFuzzTokenizers = sync.OnceValues(func() ([]*Tokenizer, error) {
	var toks []*Tokenizer
	for _, f := range []Family{Llama3, Qwen2} {
		v, err := TrainBPE(corpus.Text, f, 2048)
		if err != nil {
			return nil, err
		}
		tok, err := New(v)
		if err != nil {
			return nil, err
		}
		toks = append(toks, tok)
	}
	if tok, err := openTokenizer(filepath.Join(vocabDir, "ggml-vocab-gpt-2.gguf")); err == nil {
		toks = append(toks, tok)
	}
	return toks, nil
})

// FuzzEncodeBPE checks byte-level Encode and Decode: ids inside the vocabulary, BOS first
// exactly when the vocabulary adds it, and Decode(Encode(s)) == s, with or without
// special-token parsing (special tokens decode to their text). Invalid UTF-8 comes back as
// llama.cpp decodes it: U+FFFD for each invalid byte.
func FuzzEncodeBPE(f *testing.F) {
	addVocabCases(f)
	toks, err := bpeFuzzTokenizers()
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range []string{"llama3", "qwen3"} {
		if _, err := hfFiles(f, name); err == nil {
			toks = append(toks, hfTokenizer(f, name))
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := llamaDecoded(s)
		for _, tok := range toks {
			plain := tok.Encode(s, false, false)
			for _, special := range []bool{false, true} {
				ids := tok.Encode(s, true, special)
				if tok.Vocab().AddBOS {
					if len(ids) == 0 || ids[0] != tok.BOS() {
						t.Fatalf("Encode(%q, true, %v) = %v: no BOS first", s, special, ids)
					}
					ids = ids[1:]
				}
				for _, id := range ids {
					if id < 0 || int(id) >= tok.Size() {
						t.Fatalf("Encode(%q, true, %v) = %v: id %d out of range", s, special, ids, id)
					}
				}
				if !special && !slices.Equal(ids, plain) {
					t.Fatalf("Encode(%q) with BOS = %v, without = %v", s, ids, plain)
				}
				if got := tok.Decode(ids); got != want {
					t.Fatalf("%s: Decode(Encode(%q, %v)) = %q (ids %v)", tok.Vocab().Pre, s, special, got, ids)
				}
			}
		}
	})
}
