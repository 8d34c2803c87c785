package tokenizer

import (
	"errors"
	"fmt"

	"github.com/gretabisect/gretabisect/internal/gguf"
)

// GGUF metadata keys of the tokenizer.
const (
	KeyModel          = "tokenizer.ggml.model"
	KeyPre            = "tokenizer.ggml.pre"
	KeyTokens         = "tokenizer.ggml.tokens"
	KeyScores         = "tokenizer.ggml.scores"
	KeyTypes          = "tokenizer.ggml.token_type"
	KeyBOS            = "tokenizer.ggml.bos_token_id"
	KeyEOS            = "tokenizer.ggml.eos_token_id"
	KeyUNK            = "tokenizer.ggml.unknown_token_id"
	KeyAddBOS         = "tokenizer.ggml.add_bos_token"
	KeyAddEOS         = "tokenizer.ggml.add_eos_token"
	KeyAddSpacePrefix = "tokenizer.ggml.add_space_prefix"
)

// ModelLlama is the only tokenizer.ggml.model this package runs.
const ModelLlama = "llama"

// Defaults llama.cpp applies to a "llama" vocabulary whose metadata leaves them out.
const (
	defaultBOS = 1
	defaultEOS = 2
	defaultUNK = 0
)

// FromGGUF reads the vocabulary of a GGUF file and builds its tokenizer. The file must say
// tokenizer.ggml.model = "llama" (SentencePiece BPE); other tokenizer models are refused by
// name. Missing optional keys take llama.cpp's defaults: scores 0, types normal, BOS 1,
// EOS 2, UNK 0, add_bos_token true, add_eos_token false, add_space_prefix true. A BOS, EOS
// or UNK id outside the vocabulary is refused (llama.cpp warns and keeps the default).
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	model, err := f.String(KeyModel)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if model != ModelLlama {
		return nil, fmt.Errorf("tokenizer: key %q: tokenizer model %q is not supported (only %q, SentencePiece BPE)", KeyModel, model, ModelLlama)
	}
	v := Vocab{BOS: defaultBOS, EOS: defaultEOS, UNK: defaultUNK, AddBOS: true, AddSpacePrefix: true}
	if v.Tokens, err = f.Strings(KeyTokens); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if v.Scores, err = f.Float32s(KeyScores); err != nil && !errors.Is(err, gguf.ErrNotFound) {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if v.Types, err = f.Int32s(KeyTypes); err != nil && !errors.Is(err, gguf.ErrNotFound) {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	for _, k := range []struct {
		key string
		id  *int32
	}{{KeyBOS, &v.BOS}, {KeyEOS, &v.EOS}, {KeyUNK, &v.UNK}} {
		id, err := f.Uint(k.key)
		if errors.Is(err, gguf.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		if id >= uint64(len(v.Tokens)) {
			return nil, fmt.Errorf("tokenizer: key %q: token id %d out of range (%d tokens)", k.key, id, len(v.Tokens))
		}
		*k.id = int32(id)
	}
	for _, k := range []struct {
		key  string
		flag *bool
	}{{KeyAddBOS, &v.AddBOS}, {KeyAddEOS, &v.AddEOS}, {KeyAddSpacePrefix, &v.AddSpacePrefix}} {
		b, err := f.Bool(k.key)
		if errors.Is(err, gguf.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		*k.flag = b
	}
	return New(v)
}

// Metadata returns the GGUF key/value pairs that store v, in the order a converter writes
// them; FromGGUF reads them back. Absent ids (-1) are left out, so a reader falls back to
// llama's defaults for them.
func (v Vocab) Metadata() []gguf.KV {
	kvs := []gguf.KV{
		{Key: KeyModel, Value: gguf.ValueOf(ModelLlama)},
		{Key: KeyPre, Value: gguf.ValueOf("default")},
		{Key: KeyTokens, Value: gguf.ArrayOf(v.Tokens)},
	}
	if v.Scores != nil {
		kvs = append(kvs, gguf.KV{Key: KeyScores, Value: gguf.ArrayOf(v.Scores)})
	}
	if v.Types != nil {
		kvs = append(kvs, gguf.KV{Key: KeyTypes, Value: gguf.ArrayOf(v.Types)})
	}
	for _, k := range []struct {
		key string
		id  int32
	}{{KeyBOS, v.BOS}, {KeyEOS, v.EOS}, {KeyUNK, v.UNK}} {
		if k.id >= 0 {
			kvs = append(kvs, gguf.KV{Key: k.key, Value: gguf.ValueOf(uint32(k.id))})
		}
	}
	return append(kvs,
		gguf.KV{Key: KeyAddBOS, Value: gguf.ValueOf(v.AddBOS)},
		gguf.KV{Key: KeyAddEOS, Value: gguf.ValueOf(v.AddEOS)},
		gguf.KV{Key: KeyAddSpacePrefix, Value: gguf.ValueOf(v.AddSpacePrefix)},
	)
}
