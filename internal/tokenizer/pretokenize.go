package tokenizer

import (
	"sort"
	"strings"
	"unicode"
)

// pattern is a pre-tokenizer's splitting rule: one of the regular expressions of the
// tokenizer.json files, written out by hand because they need a lookahead that Go's regexp
// lacks. Each splitter walks the text once and takes, at each position, the first
// alternative of its expression that matches there, as a backtracking regex engine does.
type pattern uint8

const (
	// patGPT2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
	patGPT2 pattern = iota
	// patLlama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
	// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
	patLlama3
	// patQwen2: patLlama3 with \p{N} in place of \p{N}{1,3}: digits one at a time.
	patQwen2
)

// preRule is what a tokenizer.ggml.pre name selects in llama.cpp.
type preRule struct {
	pattern      pattern
	ignoreMerges bool // a word that is a token is taken whole, before any merge
	addBOS       bool // llama.cpp's default for add_bos_token
}

var (
	ruleGPT2   = preRule{pattern: patGPT2}
	ruleLlama3 = preRule{pattern: patLlama3, ignoreMerges: true, addBOS: true}
	ruleQwen2  = preRule{pattern: patQwen2}
)

// preRules maps every tokenizer.ggml.pre name that llama.cpp gives one of the three rules,
// and nothing else. Left out on purpose: "jina-v2-es", "jina-v2-de" and "jina-v2-code"
// (GPT-2's expression, but llama.cpp also strips spaces before their <mask> token), and
// "dbrx", "smaug-bpe" and "chatglm-bpe" (Llama 3's expression without its whole-word
// lookup or with other special tokens).
var preRules = map[string]preRule{
	"gpt-2": ruleGPT2, "phi-2": ruleGPT2, "jina-es": ruleGPT2, "jina-de": ruleGPT2,
	"gigachat": ruleGPT2, "jina-v1-en": ruleGPT2, "roberta-bpe": ruleGPT2,
	"mpt": ruleGPT2, "olmo": ruleGPT2, "jais": ruleGPT2,

	"llama-bpe": ruleLlama3, "llama3": ruleLlama3, "llama-v3": ruleLlama3, "falcon3": ruleLlama3,

	"qwen2": ruleQwen2, "deepseek-r1-qwen": ruleQwen2, "megrez": ruleQwen2, "stablelm2": ruleQwen2,
}

// supportedPre lists the accepted pre-tokenizer names for error messages.
func supportedPre() string {
	names := make([]string, 0, len(preRules))
	for name := range preRules {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// class is what the patterns ask of a code point: \p{L}, \p{N}, \s or none of them.
type class uint8

const (
	classEnd    class = iota // past the end of the text
	classLetter              // \p{L}
	classNumber              // \p{N}
	classSpace               // \s: Unicode White_Space
	classOther               // everything else, including unassigned code points
)

var asciiClass = func() (c [0x80]class) {
	for r := range rune(0x80) {
		c[r] = classOfRune(r)
	}
	return c
}()

func classOf(r rune) class {
	if r < 0x80 {
		return asciiClass[r]
	}
	return classOfRune(r)
}

func classOfRune(r rune) class {
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.Is(unicode.White_Space, r):
		return classSpace
	}
	return classOther
}

// decodeRune reads the code point at the start of s (not empty) as llama.cpp's
// unicode_cpts_from_utf8 does: the sequence length comes from the lead byte, continuation
// bytes are checked, and overlong forms and surrogates are accepted. A byte that starts no
// such sequence reads as U+FFFD, one byte long. So does a four-byte form above U+10FFFF,
// on which llama.cpp throws.
func decodeRune(s string) (rune, int) {
	cont := func(i int) bool { return i < len(s) && s[i]&0xC0 == 0x80 }
	b := s[0]
	switch {
	case b < 0x80:
		return rune(b), 1
	case b < 0xC0:
	case b < 0xE0:
		if cont(1) {
			return rune(b&0x1F)<<6 | rune(s[1]&0x3F), 2
		}
	case b < 0xF0:
		if cont(1) && cont(2) {
			return rune(b&0x0F)<<12 | rune(s[1]&0x3F)<<6 | rune(s[2]&0x3F), 3
		}
	case b < 0xF8:
		if cont(1) && cont(2) && cont(3) {
			r := rune(b&0x07)<<18 | rune(s[1]&0x3F)<<12 | rune(s[2]&0x3F)<<6 | rune(s[3]&0x3F)
			if r <= unicode.MaxRune {
				return r, 4
			}
		}
	}
	return unicode.ReplacementChar, 1
}

// appendRune appends the UTF-8 form of r (at most U+10FFFF) as llama.cpp's
// unicode_cpt_to_utf8 writes it: surrogates get their three-byte form, unlike
// utf8.AppendRune.
func appendRune(dst []byte, r rune) []byte {
	switch {
	case r < 0x80:
		return append(dst, byte(r))
	case r < 0x800:
		return append(dst, 0xC0|byte(r>>6), 0x80|byte(r)&0x3F)
	case r < 0x10000:
		return append(dst, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	}
	return append(dst, 0xF0|byte(r>>18), 0x80|byte(r>>12)&0x3F, 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
}

// words holds one text fragment as code points and the ends of its pre-tokenized words.
type words struct {
	cpts []rune
	cls  []class
	ends []int // exclusive end of each word in cpts, ascending
}

// split decodes text and cuts it into words by p. The buffers are reused across calls.
func (w *words) split(text string, p pattern) {
	w.cpts, w.cls, w.ends = w.cpts[:0], w.cls[:0], w.ends[:0]
	for i := 0; i < len(text); {
		r, n := decodeRune(text[i:])
		w.cpts = append(w.cpts, r)
		w.cls = append(w.cls, classOf(r))
		i += n
	}
	if p == patGPT2 {
		w.splitGPT2()
	} else {
		maxDigits := 3
		if p == patQwen2 {
			maxDigits = 1
		}
		w.splitLlama3(maxDigits)
	}
}

// at is the class of cpts[i], classEnd past the end.
func (w *words) at(i int) class {
	if i < len(w.cls) {
		return w.cls[i]
	}
	return classEnd
}

// contraction returns the length of 's 't 're 've 'm 'll 'd at pos (lower case only unless
// anyCase), or 0.
func (w *words) contraction(pos int, anyCase bool) int {
	c := w.cpts
	if c[pos] != '\'' || pos+1 >= len(c) {
		return 0
	}
	lower := func(r rune) rune {
		if anyCase && 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}
	switch lower(c[pos+1]) {
	case 's', 't', 'm', 'd':
		return 2
	}
	if pos+2 < len(c) {
		a, b := lower(c[pos+1]), lower(c[pos+2])
		if a == 'r' && b == 'e' || a == 'v' && b == 'e' || a == 'l' && b == 'l' {
			return 3
		}
	}
	return 0
}

// spaces returns the end of the whitespace run at pos and the end of its last \r or \n
// (-1 if none).
func (w *words) spaces(pos int) (end, lastNewline int) {
	lastNewline = -1
	for end = pos; w.at(end) == classSpace; end++ {
		if w.cpts[end] == '\r' || w.cpts[end] == '\n' {
			lastNewline = end + 1
		}
	}
	return end, lastNewline
}

// spaceRun is \s+(?!\S)|\s+ at pos: a run followed by a non-space keeps its last space for
// the next word, unless it is that one space.
func (w *words) spaceRun(pos, end int) int {
	if end-pos > 1 && end < len(w.cpts) {
		return end - 1
	}
	return end
}

// runOf returns the end of the run of class k that starts at pos.
func (w *words) runOf(pos int, k class) int {
	for w.at(pos) == k {
		pos++
	}
	return pos
}

// splitGPT2 cuts by patGPT2.
func (w *words) splitGPT2() {
	for pos := 0; pos < len(w.cpts); {
		end := pos + w.contraction(pos, false)
		if end == pos {
			start := pos
			if w.cpts[pos] == ' ' {
				start++ // the optional leading space of the next three alternatives
			}
			switch k := w.at(start); k {
			case classLetter, classNumber, classOther:
				end = w.runOf(start, k)
			default:
				end, _ = w.spaces(pos)
				end = w.spaceRun(pos, end)
			}
		}
		w.ends = append(w.ends, end)
		pos = end
	}
}

// splitLlama3 cuts by patLlama3 when maxDigits is 3, by patQwen2 when it is 1.
func (w *words) splitLlama3(maxDigits int) {
	for pos := 0; pos < len(w.cpts); {
		r, k := w.cpts[pos], w.cls[pos]
		end := pos + w.contraction(pos, true)
		switch {
		case end > pos:
		case r != '\r' && r != '\n' && k != classNumber && (k == classLetter || w.at(pos+1) == classLetter):
			end = w.runOf(pos+1, classLetter) // [^\r\n\p{L}\p{N}]?\p{L}+
		case k == classNumber:
			for end = pos; end-pos < maxDigits && w.at(end) == classNumber; end++ {
			}
		case k == classOther || r == ' ' && w.at(pos+1) == classOther:
			end = pos
			if r == ' ' {
				end++
			}
			end = w.runOf(end, classOther) // ?[^\s\p{L}\p{N}]+[\r\n]*
			for end < len(w.cpts) && (w.cpts[end] == '\r' || w.cpts[end] == '\n') {
				end++
			}
		default:
			var newline int
			end, newline = w.spaces(pos)
			if newline > 0 {
				end = newline // \s*[\r\n]+
			} else {
				end = w.spaceRun(pos, end)
			}
		}
		w.ends = append(w.ends, end)
		pos = end
	}
}

// preTokenize returns the words of text under pattern p, as text (not byte-level encoded),
// for tests.
func preTokenize(text string, p pattern) []string {
	var w words
	w.split(text, p)
	out := make([]string, 0, len(w.ends))
	start := 0
	for _, end := range w.ends {
		var b []byte
		for _, r := range w.cpts[start:end] {
			b = appendRune(b, r)
		}
		out = append(out, string(b))
		start = end
	}
	return out
}
