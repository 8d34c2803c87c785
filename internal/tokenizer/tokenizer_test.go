package tokenizer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// piece is one hand-made vocabulary entry.
type piece struct {
	text  string
	score float32
	typ   int32
}

// smallVocab builds a vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then pieces.
// It returns the vocabulary and a map from piece text to id for writing expectations.
func smallVocab(pieces ...piece) (Vocab, map[string]int32) {
	v := fixedVocab()
	for _, p := range pieces {
		typ := p.typ
		if typ == 0 {
			typ = TypeNormal
		}
		v.add(p.text, p.score, typ)
	}
	ids := make(map[string]int32, len(v.Tokens))
	for i, s := range v.Tokens {
		ids[s] = int32(i)
	}
	return v, ids
}

func mustNew(t *testing.T, v Vocab) *Tokenizer {
	t.Helper()
	tok, err := New(v)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tok
}

// byteID is the id smallVocab gives byte b.
func byteID(b byte) int32 { return 3 + int32(b) }

func TestEncodeSmallVocab(t *testing.T) {
	chars := []piece{{"▁", -100, 0}, {"a", -100, 0}, {"b", -100, 0}, {"c", -100, 0}, {"d", -100, 0}}
	tests := []struct {
		reason       string
		pieces       []piece
		noPrefix     bool
		addEOS       bool
		text         string
		add, special bool
		want         []string // piece texts; "<0xXX>" for byte tokens
	}{
		{
			reason: "the higher score merges first even when it is not leftmost",
			pieces: []piece{{"ab", -2, 0}, {"bc", -1, 0}},
			text:   "abc", noPrefix: true,
			want: []string{"a", "bc"},
		},
		{
			reason: "a merged piece merges again",
			pieces: []piece{{"ab", -2, 0}, {"bc", -1, 0}, {"abc", -3, 0}},
			text:   "abc", noPrefix: true,
			want: []string{"abc"},
		},
		{
			reason: "equal scores: the leftmost pair merges first",
			pieces: []piece{{"ab", -1, 0}, {"bc", -1, 0}},
			text:   "abc", noPrefix: true,
			want: []string{"ab", "c"},
		},
		{
			reason: "ties left to right over a run: aaaa pairs up from the left",
			pieces: []piece{{"aa", -1, 0}},
			text:   "aaaaa", noPrefix: true,
			want: []string{"aa", "aa", "a"},
		},
		{
			reason: "a queued pair goes stale when its right symbol merges first",
			pieces: []piece{{"ab", -3, 0}, {"bc", -1, 0}, {"cd", -2, 0}},
			text:   "abcd", noPrefix: true,
			want: []string{"a", "bc", "d"},
		},
		{
			reason: "the merged symbol pairs with its new neighbour",
			pieces: []piece{{"ab", -3, 0}, {"bc", -1, 0}, {"abc", -5, 0}, {"cd", -2, 0}},
			text:   "abcd", noPrefix: true,
			want: []string{"abc", "d"},
		},
		{
			reason: "the space prefix and escaped spaces",
			pieces: []piece{{"▁a", -1, 0}, {"▁b", -1, 0}},
			text:   "a b",
			want:   []string{"▁a", "▁b"},
		},
		{
			reason: "no prefix when the vocabulary says so",
			pieces: []piece{{"▁a", -1, 0}},
			text:   "a a", noPrefix: true,
			want: []string{"a", "▁a"},
		},
		{
			reason: "leading and repeated spaces",
			pieces: []piece{{"▁▁", -1, 0}, {"▁a", -2, 0}},
			text:   "  a",
			want:   []string{"▁▁", "▁a"},
		},
		{
			reason: "a character that is no piece falls back to its UTF-8 bytes",
			text:   "aé", noPrefix: true,
			want: []string{"a", "<0xC3>", "<0xA9>"},
		},
		{
			reason: "a newline is a byte token when no piece holds it",
			text:   "a\nb", noPrefix: true,
			want: []string{"a", "<0x0A>", "b"},
		},
		{
			reason: "invalid UTF-8: a stray continuation byte falls back to itself",
			text:   "a\x80b", noPrefix: true,
			want: []string{"a", "<0x80>", "b"},
		},
		{
			reason: "invalid UTF-8: 0xFF announces four bytes, so it takes b (and the text end) with it",
			text:   "a\xffb", noPrefix: true,
			want: []string{"a", "<0xFF>", "<0x62>"},
		},
		{
			reason: "invalid UTF-8: a lead byte swallows the next byte, as in llama.cpp, so the pair falls back to bytes even though b is a piece",
			text:   "\xc3b", noPrefix: true,
			want: []string{"<0xC3>", "<0x62>"},
		},
		{
			reason: "invalid UTF-8: a truncated sequence at the end",
			text:   "a\xe2\x96", noPrefix: true,
			want: []string{"a", "<0xE2>", "<0x96>"},
		},
		{
			reason: "the empty string gives nothing, not even the space prefix",
			text:   "",
			want:   nil,
		},
		{
			reason: "addSpecial adds BOS to the empty string",
			text:   "", add: true,
			want: []string{"<s>"},
		},
		{
			reason: "addSpecial adds BOS only (AddEOS is false)",
			pieces: []piece{{"▁a", -1, 0}},
			text:   "a", add: true,
			want: []string{"<s>", "▁a"},
		},
		{
			reason: "addSpecial adds EOS too when the vocabulary asks for it",
			pieces: []piece{{"▁a", -1, 0}},
			text:   "a", add: true, addEOS: true,
			want: []string{"<s>", "▁a", "</s>"},
		},
		{
			reason: "without addSpecial neither is added",
			pieces: []piece{{"▁a", -1, 0}},
			text:   "a", addEOS: true,
			want: []string{"▁a"},
		},
		{
			reason: "control tokens are text without parseSpecial",
			pieces: []piece{{"▁a", -1, 0}},
			text:   "a<s>", noPrefix: true,
			want: []string{"a", "<0x3C>", "<0x73>", "<0x3E>"},
		},
		{
			reason: "parseSpecial: control tokens become ids, and the text after one gets the space prefix",
			pieces: []piece{{"▁a", -1, 0}, {"▁b", -1, 0}},
			text:   "a</s><s>b", special: true,
			want: []string{"▁a", "</s>", "<s>", "▁b"},
		},
		{
			reason: "parseSpecial at the very start: no prefix before the token, one after it",
			pieces: []piece{{"▁a", -1, 0}},
			text:   "<s>a", special: true,
			want: []string{"<s>", "▁a"},
		},
		{
			reason: "user-defined tokens are parsed even without parseSpecial",
			pieces: []piece{{"▁a", -1, 0}, {"<x>", 0, TypeUserDefined}},
			text:   "a<x>a",
			want:   []string{"▁a", "<x>", "▁a"},
		},
		{
			reason: "the longer special token is cut out first",
			pieces: []piece{{"<x>", 0, TypeUserDefined}, {"<x><y>", 0, TypeControl}},
			text:   "<x><y><x>", special: true, noPrefix: true,
			want: []string{"<x><y>", "<x>"},
		},
		{
			reason: "without parseSpecial the longer control token is ignored",
			pieces: []piece{{"<x>", 0, TypeUserDefined}, {"<x><y>", 0, TypeControl}, {"<y", -2, 0}, {"<y>", -1, 0}},
			text:   "<x><y>", noPrefix: true,
			want: []string{"<x>", "<y>"},
		},
		{
			reason: "a merge can form a control token's text, as in llama.cpp",
			pieces: []piece{{"<s", -1, 0}},
			text:   "<s>", noPrefix: true,
			want: []string{"<s>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			v, ids := smallVocab(append(append([]piece(nil), chars...), tt.pieces...)...)
			v.AddSpacePrefix = !tt.noPrefix
			v.AddEOS = tt.addEOS
			tok := mustNew(t, v)
			var want []int32
			for _, p := range tt.want {
				id, ok := ids[p]
				if !ok {
					t.Fatalf("bad test: %q is no piece", p)
				}
				want = append(want, id)
			}
			got := tok.Encode(tt.text, tt.add, tt.special)
			if diff := cmp.Diff(pieceTexts(tok, want), pieceTexts(tok, got)); diff != "" {
				t.Errorf("Encode(%q, %v, %v) (-want +got):\n%s", tt.text, tt.add, tt.special, diff)
			}
		})
	}
}

func pieceTexts(tok *Tokenizer, ids []int32) []string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = tok.Piece(id)
	}
	return s
}

func TestDecode(t *testing.T) {
	v, ids := smallVocab(piece{"▁", -1, 0}, piece{"▁hi", -1, 0}, piece{"▁▁", -1, 0}, piece{"x", -1, 0},
		piece{"<gone>", -1, TypeUnused}, piece{"<u>", 0, TypeUserDefined})
	tok := mustNew(t, v)
	tests := []struct {
		reason string
		pieces []string
		ids    []int32 // appended after pieces
		want   string
	}{
		{"the first token loses the prefix space", []string{"▁hi", "▁hi"}, nil, "hi hi"},
		{"only one space is dropped", []string{"▁▁", "▁hi"}, nil, "  hi"},
		{"byte tokens join into UTF-8", []string{"x", "<0xC3>", "<0xA9>"}, nil, "xé"},
		{"control tokens show their text; after BOS the space stays", []string{"<s>", "▁hi", "</s>"}, nil, "<s> hi</s>"},
		{"unused tokens decode to nothing", []string{"x", "<gone>", "x"}, nil, "xx"},
		{"user-defined tokens show their text", []string{"x", "<u>"}, nil, "x<u>"},
		{"ids outside the vocabulary show U+FFFD", []string{"x"}, []int32{-1, int32(len(v.Tokens))}, "x\uFFFD\uFFFD"},
		{"nothing", nil, nil, ""},
	}
	for _, tt := range tests {
		var in []int32
		for _, p := range tt.pieces {
			in = append(in, ids[p])
		}
		in = append(in, tt.ids...)
		if got := tok.Decode(in); got != tt.want {
			t.Errorf("%s: Decode(%v) = %q, want %q", tt.reason, tt.pieces, got, tt.want)
		}
	}

	v.AddSpacePrefix = false
	tok = mustNew(t, v)
	if got, want := tok.Decode([]int32{ids["▁hi"]}), " hi"; got != want {
		t.Errorf("without AddSpacePrefix: Decode(▁hi) = %q, want %q", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	v, _ := smallVocab(piece{"▁", -1, 0}, piece{"▁t", -2, 0}, piece{"he", -3, 0}, piece{"▁the", -4, 0}, piece{"é", -5, 0})
	tok := mustNew(t, v)
	for _, s := range []string{
		"", " ", "the", " the", "the  end", "\tthe\nthe\r\n", "é€😀", "<s></s><unk>", "  leading and trailing  ",
	} {
		if got := tok.Decode(tok.Encode(s, false, false)); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
		if got := tok.Decode(tok.Encode(s, false, true)); !strings.Contains(s, "<") && got != s {
			t.Errorf("Decode(Encode(%q, parseSpecial)) = %q", s, got)
		}
	}
}

// naiveEncode is the definition of the merge loop, quadratic and obviously right: merge the
// best adjacent pair (highest score, then leftmost) until no pair is a piece.
func naiveEncode(v Vocab, text string) []string {
	ids := map[string]int32{}
	for i, s := range v.Tokens {
		ids[s] = int32(i)
	}
	var syms []string
	for off := 0; off < len(text); {
		n := min(utf8Len(text[off]), len(text)-off)
		syms = append(syms, text[off:off+n])
		off += n
	}
	for {
		best, bestScore := -1, float32(math.Inf(-1))
		for i := 0; i+1 < len(syms); i++ {
			if id, ok := ids[syms[i]+syms[i+1]]; ok && (best < 0 || v.Scores[id] > bestScore) {
				best, bestScore = i, v.Scores[id]
			}
		}
		if best < 0 {
			break
		}
		syms = append(syms[:best], append([]string{syms[best] + syms[best+1]}, syms[best+2:]...)...)
	}
	var out []string
	for _, s := range syms {
		if _, ok := ids[s]; ok {
			out = append(out, s)
			continue
		}
		for i := range len(s) {
			out = append(out, byteTokenText(s[i]))
		}
	}
	return out
}

// TestEncodeMatchesNaive compares the heap-based merge loop with naiveEncode on random
// vocabularies over a small alphabet, with many score ties.
func TestEncodeMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "c", "é", "\xff"}
	randString := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	for round := range 200 {
		seen := map[string]bool{}
		var pieces []piece
		for _, c := range alphabet[:4] {
			pieces = append(pieces, piece{c, -100, 0})
			seen[c] = true
		}
		for range 1 + rng.IntN(30) {
			s := randString(2 + rng.IntN(3))
			if !seen[s] {
				seen[s] = true
				pieces = append(pieces, piece{s, -float32(rng.IntN(8)), 0})
			}
		}
		v, _ := smallVocab(pieces...)
		v.AddSpacePrefix = false
		tok := mustNew(t, v)
		for range 20 {
			text := randString(rng.IntN(24))
			want := naiveEncode(v, text)
			got := pieceTexts(tok, tok.Encode(text, false, false))
			if len(want) == 0 && len(got) == 0 {
				continue
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("round %d, vocab %v: Encode(%q) differs from the naive merge loop (-want +got):\n%s", round, pieces, text, diff)
			}
		}
	}
}

func TestNewRefuses(t *testing.T) {
	base := func() Vocab {
		v, _ := smallVocab(piece{"a", -1, 0})
		return v
	}
	tests := []struct {
		reason string
		edit   func(v *Vocab)
		want   string
	}{
		{"no tokens", func(v *Vocab) { *v = Vocab{BOS: -1, EOS: -1, UNK: -1} }, "no tokens"},
		{"scores length", func(v *Vocab) { v.Scores = v.Scores[:3] }, "3 scores for 260 tokens"},
		{"types length", func(v *Vocab) { v.Types = v.Types[:1] }, "1 token types for 260 tokens"},
		{"BOS out of range", func(v *Vocab) { v.BOS = 260 }, "BOS id 260 out of range [0, 260)"},
		{"EOS negative", func(v *Vocab) { v.EOS = -2 }, "EOS id -2 out of range"},
		{"UNK out of range", func(v *Vocab) { v.UNK = 1000 }, "UNK id 1000 out of range"},
		{"AddBOS without BOS", func(v *Vocab) { v.BOS = -1 }, "asks to add BOS but has no BOS id"},
		{"AddEOS without EOS", func(v *Vocab) { v.AddEOS, v.EOS = true, -1 }, "asks to add EOS but has no EOS id"},
		{"unknown type", func(v *Vocab) { v.Types[259] = 9 }, `token 259 "a": unknown token type 9`},
		{"NaN score", func(v *Vocab) { v.Scores[259] = float32(math.NaN()) }, `token 259 "a": score is NaN`},
		{"bad byte token", func(v *Vocab) { v.Types[259] = TypeByte }, `token 259 "a": byte token text is not <0xXX>`},
		{"missing byte without UNK", func(v *Vocab) { v.Tokens[3+0x41] = "<0x41x>"; v.Types[3+0x41] = TypeNormal; v.UNK = -1 },
			"no token for byte 0x41 (neither <0x41> nor an UNK token)"},
	}
	for _, tt := range tests {
		v := base()
		tt.edit(&v)
		_, err := New(v)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New error = %v, want it to contain %q", tt.reason, err, tt.want)
		}
	}
}

func TestNewFallbacks(t *testing.T) {
	t.Run("missing byte token uses UNK", func(t *testing.T) {
		v, _ := smallVocab()
		v.Tokens[3+0x41] = "unused-slot"
		v.Types[3+0x41] = TypeNormal
		v.AddSpacePrefix = false
		tok := mustNew(t, v)
		if diff := cmp.Diff([]int32{0, byteID('B')}, tok.Encode("AB", false, false)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("one-byte piece stands for its byte", func(t *testing.T) {
		v, ids := smallVocab(piece{"A", -1, 0})
		v.Tokens[3+0x41] = "unused-slot"
		v.Types[3+0x41] = TypeNormal
		v.AddSpacePrefix = false
		tok := mustNew(t, v)
		// "\xc3A" is one symbol that is no piece; its byte A falls back to the piece "A".
		if diff := cmp.Diff([]int32{byteID(0xC3), ids["A"]}, tok.Encode("\xc3A", false, false)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("empty pieces are renamed, not matched, and the input is not modified", func(t *testing.T) {
		v, _ := smallVocab(piece{"", -1, 0}, piece{"", -1, 0})
		tok := mustNew(t, v)
		if got := tok.Piece(259); got != "[EMPTY_259]" {
			t.Errorf("Piece(259) = %q", got)
		}
		if v.Tokens[259] != "" {
			t.Errorf("New modified the caller's Tokens: %q", v.Tokens[259])
		}
	})
	t.Run("nil scores and types", func(t *testing.T) {
		tok := mustNew(t, Vocab{Tokens: []string{"<unk>", "a", "b", "ab"}, BOS: -1, EOS: -1, UNK: 0})
		if diff := cmp.Diff([]int32{3, 0}, tok.Encode("abc", false, false)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

func TestAccessors(t *testing.T) {
	v, ids := smallVocab(piece{"▁x", -1, 0})
	tok := mustNew(t, v)
	if tok.Size() != 260 || tok.BOS() != 1 || tok.EOS() != 2 {
		t.Errorf("Size %d BOS %d EOS %d, want 260 1 2", tok.Size(), tok.BOS(), tok.EOS())
	}
	for _, c := range []struct {
		id   int32
		want string
	}{{ids["▁x"], "▁x"}, {1, "<s>"}, {3 + 10, "<0x0A>"}, {-1, ""}, {260, ""}} {
		if got := tok.Piece(c.id); got != c.want {
			t.Errorf("Piece(%d) = %q, want %q", c.id, got, c.want)
		}
	}
}

// TestConcurrentEncode backs the claim that a Tokenizer is safe for concurrent use (run
// with -race).
func TestConcurrentEncode(t *testing.T) {
	v, _ := smallVocab(piece{"▁", -1, 0}, piece{"▁a", -2, 0}, piece{"ab", -3, 0})
	tok := mustNew(t, v)
	text := strings.Repeat("ab a b <s> ", 200)
	want := tok.Encode(text, true, true)
	errs := make(chan string, 4)
	for range 4 {
		go func() {
			got := tok.Encode(text, true, true)
			if !slices.Equal(got, want) {
				errs <- fmt.Sprintf("concurrent Encode gave %d ids, want %d", len(got), len(want))
				return
			}
			errs <- ""
		}()
	}
	for range 4 {
		if msg := <-errs; msg != "" {
			t.Error(msg)
		}
	}
}
