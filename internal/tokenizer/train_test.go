package tokenizer

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/internal/corpus"
)

// TestTrainSmall checks a training run by hand. Words: "▁ab" three times. Characters by
// count then bytes: a, b, ▁. Pairs (▁,a) and (a,b) both occur 3 times; "ab" < "▁a" wins,
// then (▁,ab) makes "▁ab", and no pair is left.
func TestTrainSmall(t *testing.T) {
	v, err := Train("ab ab ab", 300)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		text  string
		score float32
	}{{"ab", 0}, {"▁ab", -1}, {"a", -2}, {"b", -3}, {"▁", -4}}
	if len(v.Tokens) != FixedTokens+len(want) {
		t.Fatalf("%d tokens %q, want %d", len(v.Tokens), v.Tokens[FixedTokens:], FixedTokens+len(want))
	}
	for i, w := range want {
		id := FixedTokens + i
		if v.Tokens[id] != w.text || v.Scores[id] != w.score || v.Types[id] != TypeNormal {
			t.Errorf("token %d = %q score %v type %d, want %q score %v type %d",
				id, v.Tokens[id], v.Scores[id], v.Types[id], w.text, w.score, TypeNormal)
		}
	}
	tok := mustNew(t, v)
	if diff := cmp.Diff([]string{"▁ab", "▁ab"}, pieceTexts(tok, tok.Encode("ab ab", false, false))); diff != "" {
		t.Errorf("Encode (-want +got):\n%s", diff)
	}
}

func TestTrainFixedTokens(t *testing.T) {
	v, err := Train("x", FixedTokens)
	if err != nil {
		t.Fatal(err)
	}
	want := Vocab{Model: ModelLlama, BOS: 1, EOS: 2, UNK: 0, AddBOS: true, AddSpacePrefix: true}
	for i, s := range []string{"<unk>", "<s>", "</s>"} {
		want.Tokens = append(want.Tokens, s)
		want.Types = append(want.Types, []int32{TypeUnknown, TypeControl, TypeControl}[i])
	}
	for b := range 256 {
		want.Tokens = append(want.Tokens, byteTokenText(byte(b)))
		want.Types = append(want.Types, TypeByte)
	}
	want.Scores = make([]float32, FixedTokens)
	if diff := cmp.Diff(want, v); diff != "" {
		t.Errorf("Train(x, %d) (-want +got):\n%s", FixedTokens, diff)
	}
	// No room for pieces: everything, the space prefix included, is byte tokens.
	tok := mustNew(t, v)
	var wantIDs []int32
	for _, b := range []byte("▁xy") {
		wantIDs = append(wantIDs, byteID(b))
	}
	if diff := cmp.Diff(wantIDs, tok.Encode("xy", false, false)); diff != "" {
		t.Errorf("Encode(xy) (-want +got):\n%s", diff)
	}
}

func TestTrainRefuses(t *testing.T) {
	for _, c := range []struct {
		corpus string
		size   int
		want   string
	}{
		{"abc", FixedTokens - 1, "vocabulary size 258 is below the 259 fixed tokens"},
		{"abc\xffdef", 1000, "training corpus is not valid UTF-8 at byte 3"},
		{"abc", 1<<24 + 1, "vocabulary size 16777217 is above 16777216"},
	} {
		_, err := Train(c.corpus, c.size)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Train(%q, %d) error = %v, want %q", c.corpus, c.size, err, c.want)
		}
	}
}

// TestTrainCorpus trains the vocabulary of the generated models on the bundled corpus.
func TestTrainCorpus(t *testing.T) {
	v, seg, err := train(corpus.Text, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Tokens) != 2048 {
		t.Fatalf("%d tokens, want 2048", len(v.Tokens))
	}
	seen := map[string]int{}
	for i, s := range v.Tokens {
		if j, dup := seen[s]; dup {
			t.Errorf("tokens %d and %d are both %q", j, i, s)
		}
		seen[s] = i
		if i >= FixedTokens && (v.Types[i] != TypeNormal || strings.Contains(strings.TrimPrefix(s, spaceMarker), spaceMarker)) {
			t.Errorf("token %d %q: type %d, or U+2581 after its first character", i, s, v.Types[i])
		}
		if i > FixedTokens && v.Scores[i] >= v.Scores[i-1] {
			t.Errorf("token %d %q: score %v not below token %d's %v", i, s, v.Scores[i], i-1, v.Scores[i-1])
		}
	}

	tok := mustNew(t, v)
	ids := tok.Encode(corpus.Text, false, false)
	if len(ids)*3 > len(corpus.Text) {
		t.Errorf("%d tokens for %d bytes: want at least 3 bytes per token", len(ids), len(corpus.Text))
	}
	if got := tok.Decode(ids); got != corpus.Text {
		t.Errorf("Decode(Encode(corpus)) differs from the corpus")
	}
	for _, id := range ids {
		if v.Types[id] == TypeByte {
			t.Errorf("the corpus needed byte token %q: a character is missing from the vocabulary", v.Tokens[id])
			break
		}
	}

	// Encode's score-first merging must rebuild exactly the segmentation training learned.
	if diff := cmp.Diff(learned(corpus.Text, seg), pieceTexts(tok, ids)); diff != "" {
		t.Errorf("Encode differs from the learned segmentation (-learned +encoded):\n%s", diff)
	}

	again, err := Train(corpus.Text, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(v, again); diff != "" {
		t.Errorf("a second run differs (-first +second):\n%s", diff)
	}
}

// TestTrainCharacterBudget: with room for only some characters, the most frequent stay and
// the rest fall back to bytes, still round-tripping.
func TestTrainCharacterBudget(t *testing.T) {
	text := "aaaa bbb cc d é"
	v, err := Train(text, FixedTokens+3)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"▁", "a", "b"}, v.Tokens[FixedTokens:]); diff != "" {
		t.Errorf("pieces (-want +got):\n%s", diff)
	}
	tok := mustNew(t, v)
	if got := tok.Decode(tok.Encode(text, false, false)); got != text {
		t.Errorf("round trip = %q", got)
	}
}

// learned returns the segmentation of text that training learned, word by word.
func learned(text string, seg map[string][]string) []string {
	escaped := escape(text)
	var pieces []string
	for s := 0; s < len(escaped); {
		e := wordEnd(escaped, s)
		pieces = append(pieces, seg[escaped[s:e]]...)
		s = e
	}
	return pieces
}

// TestTrainReserved: no learned piece spells a fixed token or an end of one, so "<s>" in a
// corpus stays text, and Encode cannot form the control token where training did not.
func TestTrainReserved(t *testing.T) {
	text := strings.Repeat("<s>x</s> <0x41> <unk>", 50)
	v, seg, err := train(text, 400)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<s", "s>", "</", "/s>", "<0x", "41>", "<unk", "nk>"} {
		if slices.Contains(v.Tokens, bad) {
			t.Errorf("learned the reserved piece %q", bad)
		}
	}
	seen := map[string]bool{}
	for _, s := range v.Tokens {
		if seen[s] {
			t.Errorf("duplicate token %q", s)
		}
		seen[s] = true
	}
	tok := mustNew(t, v)
	ids := tok.Encode(text, false, false)
	if diff := cmp.Diff(learned(text, seg), pieceTexts(tok, ids)); diff != "" {
		t.Errorf("Encode differs from the learned segmentation (-learned +encoded):\n%s", diff)
	}
	if got := tok.Decode(ids); got != text {
		t.Errorf("round trip = %q", got)
	}
}

// BenchmarkTrain trains 2048 tokens on 30 KB of the corpus.
func BenchmarkTrain(b *testing.B) {
	text := corpus.Text[:30<<10]
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := Train(text, 2048); err != nil {
			b.Fatal(err)
		}
	}
}
