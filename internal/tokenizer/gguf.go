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
	KeyMerges         = "tokenizer.ggml.merges"
	KeyBOS            = "tokenizer.ggml.bos_token_id"
	KeyEOS            = "tokenizer.ggml.eos_token_id"
	KeyUNK            = "tokenizer.ggml.unknown_token_id"
	KeyAddBOS         = "tokenizer.ggml.add_bos_token"
	KeyAddEOS         = "tokenizer.ggml.add_eos_token"
	KeyAddSpacePrefix = "tokenizer.ggml.add_space_prefix"
)

// The tokenizer models this package runs (tokenizer.ggml.model).
const (
	ModelLlama = "llama" // SentencePiece BPE
	ModelGPT2  = "gpt2"  // byte-level BPE
)

// Defaults llama.cpp applies when the metadata leaves the ids out.
const (
	defaultBOS     = 1 // "llama"
	defaultEOS     = 2
	defaultUNK     = 0
	defaultBOSGPT2 = 11 // "gpt2": BOS and EOS both; no UNK
)

// FromGGUF reads the vocabulary of a GGUF file and builds its tokenizer. The file must say
// tokenizer.ggml.model = "llama" (SentencePiece BPE) or "gpt2" (byte-level BPE, which also
// needs tokenizer.ggml.merges and a supported tokenizer.ggml.pre, see New); other tokenizer
// models are refused by name.
//
// Missing optional keys take llama.cpp's defaults. "llama": scores 0, types normal, BOS 1,
// EOS 2, UNK 0, add_bos_token true, add_eos_token false, add_space_prefix true. "gpt2":
// types normal, BOS and EOS 11 (none in a vocabulary of 11 tokens or fewer), no UNK,
// add_bos_token true under the Llama 3 pre-tokenizer and false otherwise, add_eos_token
// false, add_space_prefix false. A BOS, EOS or UNK id outside the vocabulary is refused
// (llama.cpp warns and keeps the default).
//
// Like llama.cpp, it makes control tokens of the texts that end generation
// ("<|endoftext|>", "<|im_end|>", "<|eot_id|>" and others) and of the fill-in-the-middle
// texts of roles the metadata gives no id ("<|fim_prefix|>", "<PRE>" and others), whatever
// type the file stores for them. Where llama.cpp, walking a hash map, stops at the first
// text it meets for a fill-in-the-middle role, every text of the role becomes a control
// token here: the same unless a vocabulary holds two of them.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	model, err := f.String(KeyModel)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var v Vocab
	switch model {
	case ModelLlama:
		v = Vocab{BOS: defaultBOS, EOS: defaultEOS, UNK: defaultUNK, AddBOS: true, AddSpacePrefix: true}
	case ModelGPT2:
		v = Vocab{BOS: -1, EOS: -1, UNK: -1}
		if v.Pre, err = f.String(KeyPre); err != nil && !errors.Is(err, gguf.ErrNotFound) {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		v.AddBOS = preRules[v.Pre].addBOS
		if v.Merges, err = f.Strings(KeyMerges); err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
	default:
		return nil, fmt.Errorf("tokenizer: key %q: %w", KeyModel, unsupportedModel(model))
	}
	v.Model = model
	if v.Tokens, err = f.Strings(KeyTokens); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if model == ModelGPT2 && len(v.Tokens) > defaultBOSGPT2 {
		v.BOS, v.EOS = defaultBOSGPT2, defaultBOSGPT2
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
	v.Types = controlByText(f, v.Tokens, v.Types)
	return New(v)
}

// controlRoles lists the token texts llama.cpp's vocabulary loader makes control tokens
// (llama_vocab::impl::load, "auto-detect special tokens by text"). A role with keys applies
// only when none of them holds an id inside the vocabulary. The end-of-turn and
// end-of-message texts also end generation, so only the end-of-turn text that does not is
// listed under its keys.
var controlRoles = []struct {
	keys  []string
	texts []string
}{
	{nil, []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>"}},
	{[]string{"tokenizer.ggml.eot_token_id"}, []string{"<｜end▁of▁sentence｜>"}},
	{[]string{"tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"},
		[]string{"<|fim_prefix|>", "<fim-prefix>", "<｜fim▁begin｜>", "<PRE>"}},
	{[]string{"tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id"},
		[]string{"<|fim_suffix|>", "<fim-suffix>", "<｜fim▁hole｜>", "<SUF>"}},
	{[]string{"tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id"},
		[]string{"<|fim_middle|>", "<fim-middle>", "<｜fim▁end｜>", "<MID>"}},
	{[]string{"tokenizer.ggml.fim_pad_token_id"}, []string{"<|fim_pad|>", "<fim-pad>", "<PAD>"}},
	{[]string{"tokenizer.ggml.fim_rep_token_id"}, []string{"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"}},
	{[]string{"tokenizer.ggml.fim_sep_token_id"}, []string{"<|file_sep|>"}},
}

// controlByText returns types (nil: all TypeNormal) with the token texts of controlRoles
// made TypeControl, copying types before the first change.
func controlByText(f *gguf.File, tokens []string, types []int32) []int32 {
	if types != nil && len(types) != len(tokens) {
		return types // New refuses it
	}
	want := map[string]bool{}
	for _, role := range controlRoles {
		set := false
		for _, k := range role.keys {
			if id, err := f.Uint(k); err == nil && id < uint64(len(tokens)) {
				set = true
			}
		}
		for _, text := range role.texts {
			want[text] = !set
		}
	}
	copied := false
	for i, text := range tokens {
		if !want[text] || types != nil && types[i] == TypeControl {
			continue
		}
		if !copied {
			if types == nil {
				types = make([]int32, len(tokens))
				for j := range types {
					types[j] = TypeNormal
				}
			} else {
				types = append([]int32(nil), types...)
			}
			copied = true
		}
		types[i] = TypeControl
	}
	return types
}

// Metadata returns the GGUF key/value pairs that store v, in the order a converter writes
// them; FromGGUF reads them back. Absent ids (-1) are left out, so a reader falls back to
// llama.cpp's defaults for them. A byte-level vocabulary gets no scores key and no
// add_space_prefix key unless set, as llama.cpp's converter writes none.
func (v Vocab) Metadata() []gguf.KV {
	bpe := v.Model == ModelGPT2
	model, pre := ModelLlama, "default"
	if bpe {
		model, pre = ModelGPT2, v.Pre
	}
	kvs := []gguf.KV{
		{Key: KeyModel, Value: gguf.ValueOf(model)},
		{Key: KeyPre, Value: gguf.ValueOf(pre)},
		{Key: KeyTokens, Value: gguf.ArrayOf(v.Tokens)},
	}
	if v.Scores != nil {
		kvs = append(kvs, gguf.KV{Key: KeyScores, Value: gguf.ArrayOf(v.Scores)})
	}
	if v.Types != nil {
		kvs = append(kvs, gguf.KV{Key: KeyTypes, Value: gguf.ArrayOf(v.Types)})
	}
	if bpe {
		kvs = append(kvs, gguf.KV{Key: KeyMerges, Value: gguf.ArrayOf(v.Merges)})
	}
	for _, k := range []struct {
		key string
		id  int32
	}{{KeyBOS, v.BOS}, {KeyEOS, v.EOS}, {KeyUNK, v.UNK}} {
		if k.id >= 0 {
			kvs = append(kvs, gguf.KV{Key: k.key, Value: gguf.ValueOf(uint32(k.id))})
		}
	}
	kvs = append(kvs,
		gguf.KV{Key: KeyAddBOS, Value: gguf.ValueOf(v.AddBOS)},
		gguf.KV{Key: KeyAddEOS, Value: gguf.ValueOf(v.AddEOS)},
	)
	if !bpe || v.AddSpacePrefix {
		kvs = append(kvs, gguf.KV{Key: KeyAddSpacePrefix, Value: gguf.ValueOf(v.AddSpacePrefix)})
	}
	return kvs
}

// WriteMetadata adds v's Metadata to the GGUF writer w.
func (v Vocab) WriteMetadata(w *gguf.Writer) error { return writeKVs(w, v.Metadata()) }

// writeKVs adds kvs to w.
func writeKVs(w *gguf.Writer, kvs []gguf.KV) error {
	for _, kv := range kvs {
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			return fmt.Errorf("tokenizer: %w", err)
		}
	}
	return nil
}
