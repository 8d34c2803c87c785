package tokenizer

import (
	"fmt"
	"strings"
)

// Byte-level BPE (GPT-2's bytes_to_unicode): every byte is written as one character, so
// that a vocabulary of printable pieces covers any byte string. The printable bytes '!'..'~',
// '¡'..'¬' and '®'..'ÿ' stand for themselves; the other 68 bytes, in increasing order, map to
// U+0100 onwards (the space 0x20 to U+0120 "Ġ", the newline 0x0A to U+010A "Ċ").
var (
	byteChars [256]string  // byte -> its character, UTF-8 encoded
	charBytes [0x144]int16 // character -> its byte, -1 for none
	byteOrder [256]byte    // the bytes in GPT-2's vocabulary order: printable ones first
)

func init() {
	printable := func(b int) bool { return '!' <= b && b <= '~' || 0xA1 <= b && b <= 0xAC || 0xAE <= b }
	for i := range charBytes {
		charBytes[i] = -1
	}
	n, next := 0, rune(0x100)
	for pass := range 2 {
		for b := range 256 {
			if printable(b) != (pass == 0) {
				continue
			}
			r := rune(b)
			if pass == 1 {
				r, next = next, next+1
			}
			byteChars[b] = string(r)
			charBytes[r] = int16(b)
			byteOrder[n] = byte(b)
			n++
		}
	}
}

// neverWritten reports whether b cannot occur in a word: words are written back from code
// points up to U+10FFFF in their shortest UTF-8 form, which has no 0xC0, 0xC1 or 0xF5 to
// 0xFF. Vocabularies such as GPT-NeoX's leave those bytes out.
func neverWritten(b byte) bool { return b == 0xC0 || b == 0xC1 || b >= 0xF5 }

// appendByteLevel appends the byte-level characters of the UTF-8 form of cpts to dst.
func appendByteLevel(dst []byte, cpts []rune) []byte {
	var buf [4]byte
	for _, r := range cpts {
		for _, b := range appendRune(buf[:0], r) {
			dst = append(dst, byteChars[b]...)
		}
	}
	return dst
}

// decodeByteLevel turns the text of a normal byte-level token back into its bytes, as
// llama.cpp's llama_decode_text: a character outside the 256 byte characters becomes
// "[UNK_BYTE_0x<its UTF-8 in hex><the token text>]".
func decodeByteLevel(text string) string {
	var b []byte
	for i := 0; i < len(text); {
		r, n := decodeRune(text[i:])
		i += n
		if int(r) < len(charBytes) && charBytes[r] >= 0 {
			b = append(b, byte(charBytes[r]))
			continue
		}
		b = append(b, "[UNK_BYTE_0x"...)
		for _, c := range appendRune(nil, r) {
			b = fmt.Appendf(b, "%02x", c)
		}
		b = append(append(b, text...), ']')
	}
	return string(b)
}

// initBPE checks the byte-level parts of the vocabulary and builds the merge ranks.
func (t *Tokenizer) initBPE() error {
	rule, ok := preRules[t.v.Pre]
	if !ok {
		if t.v.Pre == "" {
			return fmt.Errorf("tokenizer: byte-level BPE vocabulary names no pre-tokenizer (supported: %s)", supportedPre())
		}
		return fmt.Errorf("tokenizer: pre-tokenizer %q is not supported (supported: %s)", t.v.Pre, supportedPre())
	}
	t.rule = rule
	for b := range 256 {
		if _, ok := t.ids[byteChars[b]]; !ok && !neverWritten(byte(b)) {
			return fmt.Errorf("tokenizer: byte-level BPE vocabulary has no token %q for byte 0x%02X", byteChars[b], b)
		}
	}
	t.ranks = make(map[[2]string]int, len(t.v.Merges))
	for i, m := range t.v.Merges {
		// Split at the first space after the first byte, as llama.cpp does.
		j := -1
		if len(m) > 1 {
			if j = strings.IndexByte(m[1:], ' '); j >= 0 {
				j++
			}
		}
		if j < 0 {
			return fmt.Errorf("tokenizer: merge %d %q: no space between its two pieces", i, m)
		}
		pair := [2]string{m[:j], m[j+1:]}
		if _, ok := t.ids[pair[0]+pair[1]]; !ok {
			return fmt.Errorf("tokenizer: merge %d %q: the merged piece %q is not a token", i, m, pair[0]+pair[1])
		}
		if _, dup := t.ranks[pair]; !dup { // the first rank of a repeated pair counts
			t.ranks[pair] = i
		}
	}
	return nil
}

// encodeBPE appends the ids of one text fragment: pre-tokenized into words, each word
// byte-level encoded and merged on its own.
func (t *Tokenizer) encodeBPE(s *session, text string, out []int32) []int32 {
	s.words.split(text, t.rule.pattern)
	start := 0
	for _, end := range s.words.ends {
		s.buf = appendByteLevel(s.buf[:0], s.words.cpts[start:end])
		start = end
		if t.rule.ignoreMerges {
			if id, ok := t.ids[string(s.buf)]; ok {
				out = append(out, id)
				continue
			}
		}
		word := string(s.buf)
		s.merge(t, word)
		for i := 0; i >= 0; i = s.syms[i].next {
			sym := s.syms[i]
			// Every symbol is a byte character or a merged piece, and New made sure both are
			// tokens.
			out = append(out, t.ids[word[sym.start:sym.start+sym.n]])
		}
	}
	return out
}
