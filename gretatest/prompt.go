package gretatest

import (
	"fmt"

	"github.com/gretabisect/gretabisect/internal/model"
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
