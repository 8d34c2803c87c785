package tokenizer

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/internal/corpus"
)

// TestTrainBPESmall checks a training run by hand. Words: "ab", then "Ġab" twice. Pairs:
// (a,b) 3 times, (Ġ,a) twice: "ab" first, then (Ġ,ab) twice makes "Ġab", and no pair is
// left. The special tokens follow, then padding.
func TestTrainBPESmall(t *testing.T) {
	v, err := TrainBPE("ab ab ab", Qwen2, 256+2+22+3)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a b", "Ġ ab"}, v.Merges); diff != "" {
		t.Errorf("merges (-want +got):\n%s", diff)
	}
	want := append([]string{"ab", "Ġab"}, "<|endoftext|>", "<|im_start|>")
	if diff := cmp.Diff(want, v.Tokens[256:260]); diff != "" {
		t.Errorf("tokens 256.. (-want +got):\n%s", diff)
	}
	if v.Tokens[280] != "[PAD280]" || v.Types[280] != TypeUnused || v.Types[258] != TypeControl || v.Types[272] != TypeUserDefined {
		t.Errorf("tokens 280 %q type %d, 258 type %d, 272 type %d", v.Tokens[280], v.Types[280], v.Types[258], v.Types[272])
	}
	if v.Model != ModelGPT2 || v.Pre != "qwen2" || v.BOS != 258 || v.EOS != 258 || v.AddBOS || len(v.Tokens) != 283 {
		t.Errorf("model %q pre %q BOS %d EOS %d AddBOS %v size %d", v.Model, v.Pre, v.BOS, v.EOS, v.AddBOS, len(v.Tokens))
	}
	tok := mustNew(t, v)
	if diff := cmp.Diff([]string{"ab", "Ġab", "Ġ", "a"}, pieceTexts(tok, tok.Encode("ab ab a", false, false))); diff != "" {
		t.Errorf("Encode (-want +got):\n%s", diff)
	}
}

// TestTrainBPELayout checks where the special tokens go: at their real ids when the size
// allows all of them, else after the learned pieces without the reserved placeholders.
func TestTrainBPELayout(t *testing.T) {
	for _, c := range []struct {
		f          Family
		size       int
		bos, eos   int32
		specials   int // special tokens in the vocabulary
		firstSpec  int32
		merged     int // merges, exactly (the corpus has 3483 to learn)
		padBetween bool
	}{
		{Llama3, 1000, 995, 996, 5, 995, 1000 - 256 - 5, false},
		{Llama3, 128256, 128000, 128001, 256, 128000, 3483, true},
		{Llama3, 130000, 128000, 128001, 256, 128000, 3483, true},
		{Qwen2, 151936, 151643, 151643, 22, 151643, 3483, true},
		{Qwen2, 151000, 3739, 3739, 22, 3739, 3483, false},
	} {
		v, err := TrainBPE(corpus.Text, c.f, c.size)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, typ := range v.Types {
			if typ == TypeControl || typ == TypeUserDefined {
				n++
			}
		}
		first := int32(slices.IndexFunc(v.Types, func(typ int32) bool { return typ == TypeControl }))
		if len(v.Tokens) != c.size || v.BOS != c.bos || v.EOS != c.eos || n != c.specials || first != c.firstSpec ||
			len(v.Merges) != c.merged || (v.Types[first-1] == TypeUnused) != c.padBetween {
			t.Errorf("%s %d: size %d BOS %d EOS %d, %d special tokens from %d, %d merges, padding before them %v; want %d %d %d, %d from %d, %d, %v",
				c.f.Name, c.size, len(v.Tokens), v.BOS, v.EOS, n, first, len(v.Merges), v.Types[first-1] == TypeUnused,
				c.size, c.bos, c.eos, c.specials, c.firstSpec, c.merged, c.padBetween)
		}
		if c.firstSpec == c.f.Specials[0].ID {
			for _, s := range c.f.Specials {
				if v.Tokens[s.ID] != s.Text || v.Types[s.ID] != s.Type {
					t.Errorf("%s %d: token %d = %q, want %q", c.f.Name, c.size, s.ID, v.Tokens[s.ID], s.Text)
				}
			}
		}
		if last := len(v.Tokens) - 1; v.Types[last] == TypeUnused && v.Tokens[last] != "[PAD"+strconv.Itoa(last)+"]" {
			t.Errorf("%s %d: last token %q", c.f.Name, c.size, v.Tokens[last])
		}
		if _, err := New(v); err != nil {
			t.Errorf("%s %d: New: %v", c.f.Name, c.size, err)
		}
	}
}

func TestTrainBPERefuses(t *testing.T) {
	if _, err := TrainBPE("a\xffb", Llama3, 1000); err == nil || !strings.Contains(err.Error(), "not valid UTF-8 at byte 1") {
		t.Errorf("invalid UTF-8: %v", err)
	}
	if _, err := TrainBPE("ab", Llama3, 256+4); err == nil || !strings.Contains(err.Error(), "vocabulary size 260 leaves no room for the 256 byte tokens and the 5 special tokens of llama3") {
		t.Errorf("too small: %v", err)
	}
	if _, err := TrainBPE("ab", Llama3, 256+5); err != nil {
		t.Errorf("bytes and special tokens only: %v", err)
	}
}

// checkTrainBPE checks, for one corpus, that Encode reproduces the learned segmentation of
// every word, that the ids decode back to the corpus, and that training again gives the
// same vocabulary.
func checkTrainBPE(t *testing.T, text string, f Family, size int) {
	t.Helper()
	v, seg, err := trainBPE(text, f, size)
	if err != nil {
		t.Fatalf("trainBPE(%q, %s, %d): %v", text, f.Name, size, err)
	}
	tok, err := New(v)
	if err != nil {
		t.Fatalf("New(trainBPE(%q, %s, %d)): %v", text, f.Name, size, err)
	}
	var s session
	for word, want := range seg {
		// Encode one byte-level word as Encode does inside a fragment.
		var got []string
		if id, ok := tok.ids[word]; ok && tok.rule.ignoreMerges {
			got = []string{tok.Piece(id)}
		} else {
			s.merge(tok, word)
			for i := 0; i >= 0; i = s.syms[i].next {
				got = append(got, word[s.syms[i].start:s.syms[i].start+s.syms[i].n])
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("trainBPE(%q, %s, %d): word %q encodes as %q, learned %q", text, f.Name, size, word, got, want)
		}
	}
	ids := tok.Encode(text, false, false)
	if back := tok.Decode(ids); back != text {
		t.Fatalf("trainBPE(%q, %s, %d): Decode(Encode) = %q", text, f.Name, size, back)
	}
	again, err := TrainBPE(text, f, size)
	if err != nil || !cmp.Equal(v, again) {
		t.Fatalf("trainBPE(%q, %s, %d): a second run differs (%v)", text, f.Name, size, err)
	}
}

func TestTrainBPECorpus(t *testing.T) {
	for _, f := range []Family{Llama3, Qwen2} {
		checkTrainBPE(t, corpus.Text, f, 2048)
	}
	// A user-defined special token in the corpus is cut out, as Encode cuts it.
	checkTrainBPE(t, "x<tool_call>y x<tool_call>y", Qwen2, 400)
	v, _ := TrainBPE("x<tool_call>y x<tool_call>y", Qwen2, 400)
	if slices.Contains(v.Tokens, "x<") || slices.Contains(v.Tokens, ">y") {
		t.Errorf("merges across a user-defined token: %q", v.Merges)
	}
}

// FuzzTrainBPE checks checkTrainBPE's properties on any valid corpus and size.
func FuzzTrainBPE(f *testing.F) {
	for _, s := range []string{"", "ab ab ab", "aaaa aaa", "the  cat\n\nsat 123 4567 'll I'M", "<|endoftext|> <tool_call>"} {
		f.Add(s, uint16(40), false)
	}
	f.Fuzz(func(t *testing.T, text string, extra uint16, qwen bool) {
		fam := Llama3
		if qwen {
			fam = Qwen2
		}
		size := 256 + 5 + int(extra%300) // Llama 3's named special tokens
		if qwen {
			size = 256 + len(fam.Specials) + int(extra%300)
		}
		if checkUTF8(text) != nil {
			return // refused by name, tested elsewhere
		}
		checkTrainBPE(t, text, fam, size)
	})
}

// BenchmarkTrainBPE trains the Llama 3 layout on the bundled corpus: 3483 merges, as many as
// the corpus holds.
func BenchmarkTrainBPE(b *testing.B) {
	var v Vocab
	for b.Loop() {
		var err error
		if v, err = TrainBPE(corpus.Text, Llama3, 4096); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(v.Merges)), "merges")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/op")
}
