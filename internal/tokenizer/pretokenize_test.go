package tokenizer

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

var patterns = []struct {
	name string
	p    pattern
}{{"gpt-2", patGPT2}, {"llama-bpe", patLlama3}, {"qwen2", patQwen2}}

func TestPreTokenizeCases(t *testing.T) {
	tests := []struct {
		reason, text string
		gpt2         []string
		llama3       []string // nil: same as gpt2
		qwen2        []string // nil: same as llama3
	}{
		{"empty", "", []string{}, nil, nil},
		{"a space joins the next word", "Hello world", []string{"Hello", " world"}, nil, nil},
		{"a run of spaces leaves its last one to the word", "a   b", []string{"a", "  ", " b"}, nil, nil},
		{"spaces at the end stay together", "a  ", []string{"a", "  "}, nil, nil},
		{"contractions", "I'm you'LL", []string{"I", "'m", " you", "'", "LL"},
			[]string{"I", "'m", " you", "'LL"}, nil},
		{"an apostrophe before other letters", "'era", []string{"'", "era"},
			[]string{"'era"}, nil},
		{"digits", "x 3333", []string{"x", " 3333"},
			[]string{"x", " ", "333", "3"}, []string{"x", " ", "3", "3", "3", "3"}},
		{"punctuation takes its space and, for Llama 3, newlines after it", " !!\n\nx", []string{" !!", "\n", "\n", "x"},
			[]string{" !!\n\n", "x"}, nil},
		{"newlines and spaces", "a\n \nb", []string{"a", "\n ", "\n", "b"},
			[]string{"a", "\n \n", "b"}, nil},
		{"any non-letter, non-digit but \\r \\n leads a word for Llama 3", "(a\tb\nc", []string{"(", "a", "\t", "b", "\n", "c"},
			[]string{"(a", "\tb", "\n", "c"}, nil},
		{"Unicode letters and spaces", "нещо\u3000на", []string{"нещо", "\u3000", "на"},
			[]string{"нещо", "\u3000на"}, nil},
		{"a digit is not a letter", "a1b", []string{"a", "1", "b"}, nil, nil},
		{"invalid UTF-8 reads as U+FFFD, overlong forms as their code point", "a\xff\xc0\x80b",
			[]string{"a", "\uFFFD\x00", "b"}, nil, nil},
	}
	for _, tt := range tests {
		want := map[pattern][]string{patGPT2: tt.gpt2, patLlama3: tt.llama3, patQwen2: tt.qwen2}
		if want[patLlama3] == nil {
			want[patLlama3] = tt.gpt2
		}
		if want[patQwen2] == nil {
			want[patQwen2] = want[patLlama3]
		}
		for _, p := range patterns {
			if diff := cmp.Diff(want[p.p], preTokenize(tt.text, p.p)); diff != "" {
				t.Errorf("%s: %s %q (-want +got):\n%s", tt.reason, p.name, tt.text, diff)
			}
		}
	}
}

// oracles are the patterns as Go regular expressions, an independent check of the hand
// written splitters: RE2 takes the first alternative that matches, as a backtracking
// engine does, but has no lookahead, so \s+(?!\S)|\s+ becomes a captured \s+ that
// oracleSplit shortens by one when a non-space follows it. \s is spelled out as Unicode
// White_Space (RE2's \s is ASCII only), and (?i:'s|...) as llama.cpp spells it, ASCII only.
var oracles = func() map[pattern]*regexp.Regexp {
	const space = `\t-\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}`
	compile := func(expr string) *regexp.Regexp {
		expr = strings.ReplaceAll(expr, `[^\s`, `[^`+space)
		return regexp.MustCompile(strings.ReplaceAll(expr, `\s`, `[`+space+`]`))
	}
	const contractions = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])`
	return map[pattern]*regexp.Regexp{
		patGPT2:   compile(`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|(\s+)`),
		patLlama3: compile(contractions + `|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|(\s+)`),
		patQwen2:  compile(contractions + `|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|(\s+)`),
	}
}()

// oracleSplit cuts valid UTF-8 text with re, as llama.cpp's regex path does: a stretch no
// alternative matches would be a word of its own (none does for these patterns).
func oracleSplit(re *regexp.Regexp, text string) []string {
	out := []string{}
	for pos := 0; pos < len(text); {
		m := re.FindStringSubmatchIndex(text[pos:])
		if m == nil {
			return append(out, text[pos:])
		}
		if m[0] > 0 {
			out = append(out, text[pos:pos+m[0]])
		}
		start, end := pos+m[0], pos+m[1]
		if m[2] >= 0 && end < len(text) && utf8.RuneCountInString(text[start:end]) > 1 {
			_, n := utf8.DecodeLastRuneInString(text[start:end]) // \s+(?!\S)
			end -= n
		}
		out = append(out, text[start:end])
		pos = end
	}
	return out
}

// checkPreTokenize checks the splitters' properties on text: no empty word, words that
// concatenate back to the text (to its decoding, for invalid UTF-8), the same words on a
// second run, and for valid UTF-8 the oracle's words.
func checkPreTokenize(t *testing.T, text string) {
	t.Helper()
	decoded := llamaDecoded(text)
	for _, p := range patterns {
		got := preTokenize(text, p.p)
		if slices.Contains(got, "") {
			t.Fatalf("%s %q: an empty word in %q", p.name, text, got)
		}
		if joined := strings.Join(got, ""); joined != decoded {
			t.Fatalf("%s %q: words %q join to %q", p.name, text, got, joined)
		}
		if again := preTokenize(text, p.p); !slices.Equal(got, again) {
			t.Fatalf("%s %q: %q, then %q", p.name, text, got, again)
		}
		if !utf8.ValidString(text) {
			continue
		}
		if want := oracleSplit(oracles[p.p], text); !slices.Equal(want, got) {
			t.Fatalf("%s %q: words %q, the regular expression gives %q", p.name, text, got, want)
		}
	}
}

// llamaDecoded is s as llama.cpp decodes it into code points and writes it back: each
// invalid byte becomes U+FFFD; valid UTF-8 stays as it is.
func llamaDecoded(s string) string {
	var b []byte
	for i := 0; i < len(s); {
		r, n := decodeRune(s[i:])
		b = appendRune(b, r)
		i += n
	}
	return string(b)
}

// TestPreTokenizeOracle compares the splitters with the oracle on llama.cpp's test strings
// and on random strings over characters that exercise every alternative.
func TestPreTokenizeOracle(t *testing.T) {
	inp, err := os.ReadFile(filepath.Join(vocabDir, llamaSPM+".inp"))
	if err == nil {
		for _, s := range strings.Split(string(inp), "\n__ggml_vocab_test__\n") {
			checkPreTokenize(t, s)
		}
	}
	alphabet := []rune("aZé语'sStTrReEvVmMlLdD 1٣Ⅻ\t\r\n\v\u0085\u00A0\u3000.,!?-_()😀\u200d\u0301")
	rng := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		b := make([]rune, rng.IntN(12))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		checkPreTokenize(t, string(b))
	}
}

// FuzzPreTokenize checks the splitters' properties (see checkPreTokenize) on any input.
func FuzzPreTokenize(f *testing.F) {
	addVocabCases(f)
	f.Fuzz(checkPreTokenize)
}

// TestDecodeRune checks the llama.cpp-style decoder on the forms Go's decoder rejects.
func TestDecodeRune(t *testing.T) {
	tests := []struct {
		in   string
		r    rune
		size int
	}{
		{"a", 'a', 1},
		{"é", 'é', 2},
		{"\xc0\x80", 0, 2},                  // overlong NUL
		{"\xed\xa0\x80", 0xD800, 3},         // surrogate
		{"\xf4\x8f\xbf\xbf", 0x10FFFF, 4},   // the last code point
		{"\xf4\x90\x80\x80", 0xFFFD, 1},     // above U+10FFFF
		{"\xf8\x88\x80\x80\x80", 0xFFFD, 1}, // five-byte form
		{"\x80", 0xFFFD, 1},                 // continuation byte
		{"\xe2\x82", 0xFFFD, 1},             // cut short
		{"\xe2(\xa1", 0xFFFD, 1},            // bad continuation
	}
	for _, tt := range tests {
		r, size := decodeRune(tt.in)
		if r != tt.r || size != tt.size {
			t.Errorf("decodeRune(%q) = %U, %d; want %U, %d", tt.in, r, size, tt.r, tt.size)
		}
		if size > 1 && r != 0 { // all but the overlong form write back as they were
			if back := string(appendRune(nil, r)); back != tt.in[:size] {
				t.Errorf("appendRune(%U) = %q, want %q", r, back, tt.in[:size])
			}
		}
	}
}
