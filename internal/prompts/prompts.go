// Package prompts defines the standard prompts of the bisect suite and builds custom ones.
//
// The standard prompts are cut from the bundled corpus at the token level, so that they
// have exactly the same number of tokens under every vocabulary that can encode them, BOS
// included where the vocabulary adds one (Qwen2's does not): p0_short 5, p6_len_16 827
// (last position 826) and p6_len_32 1653 (last position 1652), the two positions where the
// seed saw long-context collapse.
package prompts

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gretabisect/gretabisect/internal/corpus"
)

// The standard prompt ids.
const (
	P0Short = "p0_short"
	P6Len16 = "p6_len_16"
	P6Len32 = "p6_len_32"
)

var standard = []struct {
	id   string
	n    int    // tokens, BOS included
	text string // cut at the token level to n tokens
}{
	{P0Short, 5, corpus.Short},
	{P6Len16, 827, corpus.Text},
	{P6Len32, 1653, corpus.Text},
}

// Encoder turns text into token ids, BOS first when addSpecial is set (the model's own
// rule); *tokenizer.Tokenizer is one.
type Encoder interface {
	Encode(text string, addSpecial, parseSpecial bool) []int32
}

// Prompt is a tokenized prompt.
type Prompt struct {
	ID     string
	Tokens []int32 // BOS included
}

// IDs lists the standard prompt ids, shortest first.
func IDs() []string {
	ids := make([]string, len(standard))
	for i, s := range standard {
		ids[i] = s.id
	}
	return ids
}

// Len returns the token count of standard prompt id, BOS included.
func Len(id string) (int, bool) {
	for _, s := range standard {
		if s.id == id {
			return s.n, true
		}
	}
	return 0, false
}

// Standard tokenizes the standard prompt id with enc and cuts it to its length.
func Standard(id string, enc Encoder) (Prompt, error) {
	for _, s := range standard {
		if s.id != id {
			continue
		}
		toks := enc.Encode(s.text, true, false)
		if len(toks) < s.n {
			return Prompt{}, fmt.Errorf("prompts: %s needs %d tokens, its text gives only %d under this vocabulary", id, s.n, len(toks))
		}
		return Prompt{ID: id, Tokens: toks[:s.n:s.n]}, nil
	}
	return Prompt{}, fmt.Errorf("prompts: unknown standard prompt %q (known: %s)", id, strings.Join(IDs(), ", "))
}

// All returns every standard prompt, shortest first.
func All(enc Encoder) ([]Prompt, error) {
	var out []Prompt
	for _, id := range IDs() {
		p, err := Standard(id, enc)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// FromText tokenizes a custom prompt, BOS included by the model's rule.
func FromText(id, text string, enc Encoder) (Prompt, error) {
	toks := enc.Encode(text, true, false)
	if text == "" || len(toks) == 0 {
		return Prompt{}, fmt.Errorf("prompts: %s: empty text", id)
	}
	return Prompt{ID: id, Tokens: toks}, nil
}

// ParseTokens reads a custom prompt of comma-separated token ids ("1,15043,3186"), taken
// as they are: BOS is not added.
func ParseTokens(id, list string) (Prompt, error) {
	var toks []int32
	for i, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		v, err := strconv.ParseInt(f, 10, 32)
		if err != nil || v < 0 {
			return Prompt{}, fmt.Errorf("prompts: %s: token %d %q is not a token id", id, i+1, f)
		}
		toks = append(toks, int32(v))
	}
	return Prompt{ID: id, Tokens: toks}, nil
}
