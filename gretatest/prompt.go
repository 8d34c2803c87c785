package gretatest

import (
	"fmt"

	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
)

// Prompt is one input of a bisect: an id (the subtest's name and the trace file's
// <prompt_id>) and tokens for a given model.
type Prompt struct {
	ID string
	// Text is what an external engine reads from its prompt file; empty for token prompts.
	Text   string
	tokens func(m *model.Model) ([]int32, error)
}

// Tokens returns the prompt's tokens for m, BOS included.
func (p Prompt) Tokens(m *model.Model) ([]int32, error) {
	if p.tokens == nil {
		return nil, fmt.Errorf("gretatest: prompt %q has no tokens (build prompts with TokenPrompt, TextPrompt or StandardPrompts)", p.ID)
	}
	toks, err := p.tokens(m)
	if err != nil {
		return nil, fmt.Errorf("gretatest: prompt %q: %w", p.ID, err)
	}
	return toks, nil
}

// TokenPrompt is a prompt given as token ids, BOS included.
func TokenPrompt(id string, tokens ...int32) Prompt {
	toks := append([]int32(nil), tokens...)
	return Prompt{ID: id, tokens: func(*model.Model) ([]int32, error) { return toks, nil }}
}

// TextPrompt is a prompt given as text, tokenized with the model's own vocabulary (BOS by
// the model's rule).
func TextPrompt(id, text string) Prompt {
	return Prompt{ID: id, Text: text, tokens: func(m *model.Model) ([]int32, error) {
		if m.Tokenizer == nil {
			return nil, fmt.Errorf("model has no tokenizer")
		}
		p, err := prompts.FromText(id, text, m.Tokenizer)
		return p.Tokens, err
	}}
}

// StandardPrompts returns the B3.61 prompts, shortest first: p0_short (5 tokens),
// p6_len_16 (827: last position 826) and p6_len_32 (1653: last position 1652), cut at the
// token level from the bundled corpus for the model's vocabulary, BOS included when the
// vocabulary adds one (Qwen2's does not: its prompts are the text's first tokens).
func StandardPrompts() []Prompt {
	var out []Prompt
	for _, id := range prompts.IDs() {
		out = append(out, Prompt{ID: id, tokens: func(m *model.Model) ([]int32, error) {
			if m.Tokenizer == nil {
				return nil, fmt.Errorf("model has no tokenizer")
			}
			p, err := prompts.Standard(id, m.Tokenizer)
			return p.Tokens, err
		}})
	}
	return out
}
