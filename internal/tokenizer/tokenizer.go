// Package tokenizer implements the SentencePiece BPE tokenizer of GGUF files whose
// tokenizer.ggml.model is "llama", with the behaviour of llama.cpp (the reference is
// llama.cpp at commit c392e5094deaf2d1a7c18683214f007fad3fe42b, the commit of the shared
// conformance vectors), and a trainer that builds such vocabularies for generated models.
//
// Encoding follows llama.cpp step by step:
//
//  1. Special-token partition: the text is split around control, unknown and user-defined
//     token texts found in it (longest token text first). Control and unknown tokens take
//     part only when parseSpecial is set; user-defined tokens always do.
//  2. Each remaining text fragment gets one leading space when AddSpacePrefix is set and the
//     fragment is at the start of the text or right after a special token, then every space
//     becomes U+2581 ("▁").
//  3. The fragment is split into UTF-8 characters (by lead byte, as llama.cpp does, so
//     invalid input is still split deterministically). Repeatedly, the adjacent pair whose
//     concatenation is a vocabulary piece with the highest score is merged; ties go to the
//     leftmost pair.
//  4. Each final symbol that is a piece becomes its id; any other symbol falls back to one
//     <0xXX> byte token per byte.
//
// Not carried over: the lstrip/rstrip attributes llama.cpp gives the special tokens of a
// few models it recognises by name (Phi-3, Jina v2); Llama 1/2 and TinyLlama have none.
package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Token types, as stored in tokenizer.ggml.token_type.
const (
	TypeUndefined   int32 = 0
	TypeNormal      int32 = 1
	TypeUnknown     int32 = 2
	TypeControl     int32 = 3
	TypeUserDefined int32 = 4
	TypeUnused      int32 = 5
	TypeByte        int32 = 6
)

// spaceMarker replaces every space before merging (U+2581, LOWER ONE EIGHTH BLOCK).
const spaceMarker = "\u2581"

// Vocab is a SentencePiece vocabulary as GGUF stores it. Id i is Tokens[i].
type Vocab struct {
	Tokens []string  // piece texts; spaces appear as U+2581, bytes as "<0xXX>"
	Scores []float32 // merge priority, higher first; nil means all 0
	Types  []int32   // Type* constants; nil means all TypeNormal

	BOS, EOS, UNK int32 // -1 when absent

	AddBOS, AddEOS bool // what Encode adds when asked to add special tokens
	AddSpacePrefix bool // prefix the text (and text after a special token) with one space
}

// Tokenizer encodes text to token ids and back. It is safe for concurrent use.
type Tokenizer struct {
	v       Vocab
	ids     map[string]int32 // piece text -> id; for duplicate texts the last id wins
	byteID  [256]int32       // id emitted for a byte that is in no piece
	special []int32          // partition order: longest text first, then lowest id
	decoded []string         // what Decode writes for each id
}

// New validates v and builds a tokenizer. The tokenizer keeps v's slices; do not modify
// them afterwards.
//
// It refuses mismatched slice lengths, unknown token types, NaN scores, BOS/EOS/UNK ids out
// of range, AddBOS/AddEOS without the id, a byte token whose text is not <0xXX>, and a
// vocabulary in which some byte has neither a byte token (<0xXX>, or the one-byte piece)
// nor an UNK token to stand for it. An empty piece is renamed "[EMPTY_<id>]", as llama.cpp
// does, so that it can never match text.
func New(v Vocab) (*Tokenizer, error) {
	n := len(v.Tokens)
	if n == 0 {
		return nil, errors.New("tokenizer: vocabulary has no tokens")
	}
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("tokenizer: %d tokens do not fit int32 ids", n)
	}
	if v.Scores != nil && len(v.Scores) != n {
		return nil, fmt.Errorf("tokenizer: %d scores for %d tokens", len(v.Scores), n)
	}
	if v.Types != nil && len(v.Types) != n {
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens", len(v.Types), n)
	}
	for _, s := range []struct {
		name string
		id   int32
		need bool
	}{{"BOS", v.BOS, v.AddBOS}, {"EOS", v.EOS, v.AddEOS}, {"UNK", v.UNK, false}} {
		if s.id < -1 || s.id >= int32(n) {
			return nil, fmt.Errorf("tokenizer: %s id %d out of range [0, %d)", s.name, s.id, n)
		}
		if s.need && s.id < 0 {
			return nil, fmt.Errorf("tokenizer: vocabulary asks to add %s but has no %s id", s.name, s.name)
		}
	}

	t := &Tokenizer{v: v, ids: make(map[string]int32, n), decoded: make([]string, n)}
	tokens, copied := v.Tokens, false
	for i, text := range v.Tokens {
		id := int32(i)
		if text == "" {
			if !copied { // never write the caller's slice
				tokens, copied = append([]string(nil), v.Tokens...), true
			}
			text = "[EMPTY_" + strconv.Itoa(i) + "]"
			tokens[i] = text
		}
		typ := t.typeOf(id)
		if typ < TypeUndefined || typ > TypeByte {
			return nil, fmt.Errorf("tokenizer: token %d %q: unknown token type %d", i, text, typ)
		}
		if v.Scores != nil && math.IsNaN(float64(v.Scores[i])) {
			return nil, fmt.Errorf("tokenizer: token %d %q: score is NaN", i, text)
		}
		t.ids[text] = id
		switch typ {
		case TypeNormal:
			t.decoded[i] = strings.ReplaceAll(text, spaceMarker, " ")
		case TypeByte:
			b, ok := parseByteToken(text)
			if !ok {
				return nil, fmt.Errorf("tokenizer: token %d %q: byte token text is not <0xXX>", i, text)
			}
			t.decoded[i] = string([]byte{b})
		case TypeControl, TypeUnknown, TypeUserDefined:
			t.decoded[i] = text
			t.special = append(t.special, id)
		}
	}
	t.v.Tokens = tokens

	for b := range 256 {
		id, ok := t.ids[byteTokenText(byte(b))]
		if !ok {
			id, ok = t.ids[string([]byte{byte(b)})]
		}
		if !ok {
			if v.UNK < 0 {
				return nil, fmt.Errorf("tokenizer: no token for byte 0x%02X (neither %s nor an UNK token)", b, byteTokenText(byte(b)))
			}
			id = v.UNK
		}
		t.byteID[b] = id
	}

	sortSpecial(t.special, tokens)
	return t, nil
}

func (t *Tokenizer) typeOf(id int32) int32 {
	if t.v.Types == nil {
		return TypeNormal
	}
	return t.v.Types[id]
}

func (t *Tokenizer) score(id int32) float32 {
	if t.v.Scores == nil {
		return 0
	}
	return t.v.Scores[id]
}

const hexDigits = "0123456789ABCDEF"

// byteTokenText returns "<0xXX>" with upper-case hex, the only spelling llama.cpp looks up.
func byteTokenText(b byte) string {
	return string([]byte{'<', '0', 'x', hexDigits[b>>4], hexDigits[b&15], '>'})
}

// parseByteToken reads "<0xXX>" (either case of hex digit).
func parseByteToken(s string) (byte, bool) {
	if len(s) != 6 || s[:3] != "<0x" || s[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(s[3:5], 16, 8)
	return byte(v), err == nil
}

// Size returns the number of tokens.
func (t *Tokenizer) Size() int { return len(t.v.Tokens) }

// BOS returns the beginning-of-sequence id, or -1.
func (t *Tokenizer) BOS() int32 { return t.v.BOS }

// EOS returns the end-of-sequence id, or -1.
func (t *Tokenizer) EOS() int32 { return t.v.EOS }

// Piece returns the vocabulary text of id (spaces as U+2581, bytes as <0xXX>), or "" for an
// id outside the vocabulary.
func (t *Tokenizer) Piece(id int32) string {
	if id < 0 || int(id) >= len(t.v.Tokens) {
		return ""
	}
	return t.v.Tokens[id]
}

// Vocab returns the vocabulary the tokenizer was built from (after New's renames). The
// slices are shared: do not modify them.
func (t *Tokenizer) Vocab() Vocab { return t.v }
