// Package model binds a GGUF file to a configuration and weight set of a supported
// architecture (llama, qwen2: see layout.Archs): every dimension comes from the file's
// metadata, and every tensor must have exactly the shape the configuration implies before
// any engine sees it.
package model

import (
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/tokenizer"
)

// The configuration and weights are the public engine API's types: engines of other modules
// read them through engine.Model.
type (
	Config  = engine.Config
	Weights = engine.Weights
	Layer   = engine.Layer
	Matrix  = engine.Matrix
)

// Model is a validated model: what engines run (engine.Model: name, file type, config and
// weights) and what gretabisect knows besides (the tokenizer, the file).
type Model struct {
	engine.Model
	Tokenizer *tokenizer.Tokenizer // from the same file
	File      *gguf.File           // the parsed file: metadata and the tensor table
}

// Close releases the file the model was loaded from (its memory map). Weights that alias
// the file must not be used afterwards.
func (m *Model) Close() error {
	if m.File == nil { // a Model assembled by hand
		return nil
	}
	return m.File.Close()
}
