// Package tokenizer implements the two tokenizers of GGUF files that llama.cpp calls SPM and
// BPE, with llama.cpp's behaviour (the reference is llama.cpp at commit
// c392e5094deaf2d1a7c18683214f007fad3fe42b, the commit of the shared conformance vectors),
// and trainers that build such vocabularies for generated models:
//
//   - tokenizer.ggml.model "llama": SentencePiece BPE (Llama 1/2, TinyLlama).
//   - tokenizer.ggml.model "gpt2": byte-level BPE with the pre-tokenizer that
//     tokenizer.ggml.pre names: "gpt-2", "llama-bpe" (Llama 3) or "qwen2" (Qwen 1.5 to 3),
//     or a name llama.cpp gives the same rules (see New).
//
// Encoding follows llama.cpp step by step. First, for both models, the special-token
// partition: the text is split around control, unknown and user-defined token texts found
// in it (longest token text first). Control and unknown tokens take part only when
// parseSpecial is set; user-defined tokens always do. Each remaining text fragment is then
// encoded on its own.
//
// SentencePiece ("llama"):
//
//  1. The fragment gets one leading space when AddSpacePrefix is set and the fragment is at
//     the start of the text or right after a special token, then every space becomes
//     U+2581 ("▁").
//  2. The fragment is split into UTF-8 characters (by lead byte, as llama.cpp does, so
//     invalid input is still split deterministically). Repeatedly, the adjacent pair whose
//     concatenation is a vocabulary piece with the highest score is merged; ties go to the
//     leftmost pair.
//  3. Each final symbol that is a piece becomes its id; any other symbol falls back to one
//     <0xXX> byte token per byte.
//
// Byte-level BPE ("gpt2"):
//
//  1. The fragment is decoded into code points as llama.cpp decodes it: an invalid byte
//     becomes U+FFFD (so invalid UTF-8 does not round-trip), while overlong forms and
//     surrogates are taken as the code points they spell. A four-byte form above U+10FFFF,
//     on which llama.cpp throws, reads as U+FFFD too.
//  2. The pre-tokenizer cuts it into words by its regular expression, written out by hand
//     (the expressions need a lookahead Go's regexp lacks). Letters, numbers and spaces are
//     Go's unicode.IsLetter, unicode.IsNumber and unicode.White_Space (Unicode 15.0 in Go
//     1.26). llama.cpp's own tables, at the reference commit, are newer: they also count the
//     622 ideographs of CJK Extension I (U+2EBF0..U+2EE5D, Unicode 15.1) as letters, where
//     Go's tables have unassigned code points; no other code point differs.
//  3. Each word is written in GPT-2's byte-level alphabet (each byte as one printable
//     character) and split into those characters. Repeatedly, the adjacent pair with the
//     lowest rank in tokenizer.ggml.merges is merged; ties go to the leftmost pair. Under
//     "llama-bpe" a word that is a token as a whole is taken before any merge (Llama 3's
//     ignore_merges). Each final symbol is a token.
//
// Not carried over: the lstrip/rstrip attributes llama.cpp gives the special tokens of a
// few models it recognises by name (Phi-3, Jina v2); Llama 1/2, TinyLlama, Llama 3, Qwen and
// GPT-2 have none. Decode never applies llama.cpp's clean_up_tokenization_spaces pass
// (which drops the space in " ," or " 's" for some byte-level vocabularies), so that it is
// the exact inverse of Encode.
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

// Vocab is a vocabulary as GGUF stores it. Id i is Tokens[i].
type Vocab struct {
	Model string // ModelLlama (also for "") or ModelGPT2
	Pre   string // ModelGPT2: the pre-tokenizer, such as "llama-bpe"; ignored for ModelLlama

	// Piece texts. ModelLlama: spaces as U+2581, bytes as "<0xXX>". ModelGPT2: normal
	// pieces in the byte-level alphabet ("Ġ" for a space); control and user-defined tokens
	// as plain text.
	Tokens []string
	Scores []float32 // ModelLlama: merge priority, higher first; nil means all 0
	Types  []int32   // Type* constants; nil means all TypeNormal
	Merges []string  // ModelGPT2: "left right" piece pairs, the first merged first

	BOS, EOS, UNK int32 // -1 when absent

	AddBOS, AddEOS bool // what Encode adds when asked to add special tokens
	// ModelLlama: Encode prefixes the text (and text after a special token) with one
	// space. Decode drops one leading space of the first token, for both models as in
	// llama.cpp, although byte-level Encode adds none.
	AddSpacePrefix bool
}

// Tokenizer encodes text to token ids and back. It is safe for concurrent use.
type Tokenizer struct {
	v       Vocab
	ids     map[string]int32 // piece text -> id; for duplicate texts the last id wins
	special []int32          // partition order: longest text first, then lowest id
	decoded []string         // what Decode writes for each id

	byteID [256]int32 // ModelLlama: id emitted for a byte that is in no piece

	ranks map[[2]string]int // ModelGPT2: merge rank of each pair of pieces; nil for ModelLlama
	rule  preRule           // ModelGPT2: the pre-tokenizer
}

// New validates v and builds a tokenizer. The tokenizer keeps v's slices; do not modify
// them afterwards.
//
// It refuses an unknown model, mismatched slice lengths, unknown token types, NaN scores,
// BOS/EOS/UNK ids out of range, and AddBOS/AddEOS without the id. For ModelLlama it refuses
// merges, a byte token whose text is not <0xXX>, and a vocabulary in which some byte has
// neither a byte token (<0xXX>, or the one-byte piece) nor an UNK token to stand for it.
// For ModelGPT2 it refuses a pre-tokenizer other than those llama.cpp runs with the rules
// of "gpt-2" (also "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "roberta-bpe",
// "mpt", "olmo", "jais"), "llama-bpe" (also "llama3", "llama-v3", "falcon3") or "qwen2"
// (also "deepseek-r1-qwen", "megrez", "stablelm2"); a byte whose byte-level character is
// not a token (but for 0xC0, 0xC1 and 0xF5 to 0xFF, which UTF-8 never holds); and a merge without a space after its first byte or whose merged piece is
// not a token (llama.cpp accepts those and silently drops what they would produce). An
// empty piece is renamed "[EMPTY_<id>]", as llama.cpp does, so that it can never match
// text.
func New(v Vocab) (*Tokenizer, error) {
	n := len(v.Tokens)
	if n == 0 {
		return nil, errors.New("tokenizer: vocabulary has no tokens")
	}
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("tokenizer: %d tokens do not fit int32 ids", n)
	}
	switch v.Model {
	case "", ModelLlama:
		v.Model = ModelLlama
		if len(v.Merges) > 0 {
			return nil, errors.New("tokenizer: merges given for a SentencePiece (llama) vocabulary")
		}
	case ModelGPT2:
	default:
		return nil, fmt.Errorf("tokenizer: %w", unsupportedModel(v.Model))
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
	bpe := v.Model == ModelGPT2
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
		switch {
		case typ == TypeControl || typ == TypeUnknown || typ == TypeUserDefined:
			t.decoded[i] = text
			t.special = append(t.special, id)
		case typ == TypeNormal && bpe:
			t.decoded[i] = decodeByteLevel(text)
		case typ == TypeNormal:
			t.decoded[i] = strings.ReplaceAll(text, spaceMarker, " ")
		case typ == TypeByte && !bpe: // llama.cpp writes nothing for a byte-level byte token
			b, ok := parseByteToken(text)
			if !ok {
				return nil, fmt.Errorf("tokenizer: token %d %q: byte token text is not <0xXX>", i, text)
			}
			t.decoded[i] = string([]byte{b})
		}
	}
	t.v.Tokens = tokens
	sortSpecial(t.special, tokens)

	if bpe {
		if err := t.initBPE(); err != nil {
			return nil, err
		}
		return t, nil
	}
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
	return t, nil
}

// unsupportedModel is the error for a tokenizer.ggml.model this package does not run.
func unsupportedModel(model string) error {
	return fmt.Errorf("tokenizer model %q is not supported (only %q, SentencePiece BPE, and %q, byte-level BPE)", model, ModelLlama, ModelGPT2)
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

// Piece returns the vocabulary text of id (as Vocab.Tokens holds it), or "" for an id
// outside the vocabulary.
func (t *Tokenizer) Piece(id int32) string {
	if id < 0 || int(id) >= len(t.v.Tokens) {
		return ""
	}
	return t.v.Tokens[id]
}

// Vocab returns the vocabulary the tokenizer was built from (after New's renames). The
// slices are shared: do not modify them.
func (t *Tokenizer) Vocab() Vocab { return t.v }
