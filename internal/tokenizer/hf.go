package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gretabisect/gretabisect/internal/gguf"
)

// The pre-tokenizer expressions of the tokenizer.json files that HFMetadata recognises.
const (
	hfRegexLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	hfRegexQwen2  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// hfFile is the part of a Hugging Face tokenizer.json that the conversion reads.
type hfFile struct {
	Model struct {
		Type   string            `json:"type"`
		Vocab  map[string]int    `json:"vocab"`
		Merges []json.RawMessage `json:"merges"` // "a b", or ["a", "b"] since transformers 4.45
	} `json:"model"`
	AddedTokens []struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		Special    bool   `json:"special"`
		Normalized bool   `json:"normalized"`
	} `json:"added_tokens"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
}

// hfPreStep is one pre-tokenizer of tokenizer.json, or a Sequence of them.
type hfPreStep struct {
	Type          string      `json:"type"`
	PreTokenizers []hfPreStep `json:"pretokenizers"`
	Pattern       struct {
		Regex string `json:"Regex"`
	} `json:"pattern"`
	Behavior string `json:"behavior"`
	Invert   bool   `json:"invert"`
	UseRegex *bool  `json:"use_regex"` // absent means true
}

// FromHF builds the tokenizer of a Hugging Face byte-level BPE tokenizer: it converts the
// files with HFMetadata and loads the result as FromGGUF loads a file.
func FromHF(tokenizerJSON, tokenizerConfigJSON []byte) (*Tokenizer, error) {
	kvs, err := HFMetadata(tokenizerJSON, tokenizerConfigJSON)
	if err != nil {
		return nil, err
	}
	w := gguf.NewWriter()
	if err := writeKVs(w, kvs); err != nil {
		return nil, err
	}
	f, err := parseImage(w)
	if err != nil {
		return nil, err
	}
	return FromGGUF(f)
}

// parseImage writes w's GGUF image to memory and parses it back.
func parseImage(w *gguf.Writer) (*gguf.File, error) {
	var buf bytes.Buffer
	if err := w.Write(&buf); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return f, nil
}

// HFMetadata returns the tokenizer metadata that llama.cpp's convert_hf_to_gguf.py writes
// for a Hugging Face byte-level BPE tokenizer (its get_vocab_base and gguf-py's
// SpecialVocab), from the contents of tokenizer.json and, if not nil, tokenizer_config.json:
//
//   - tokenizer.ggml.tokens: the token of each id, from the model's vocab and the added
//     tokens; an id held by neither becomes "[PAD<id>]" of type unused.
//   - tokenizer.ggml.token_type: control for an added token marked special or that looks
//     special ("<|...|>", "<｜...｜>", "<unused...>", "<pad>", "<mask>", "<2mass>",
//     "[@BOS@]"), user-defined for the other added tokens (with U+2581 written as a space),
//     normal for the rest. The script also re-encodes the added tokens marked not
//     normalized through the Hugging Face tokenizer, which gives their text back unchanged
//     for the tokenizers this package reads; that step is left out.
//   - tokenizer.ggml.merges: the model's merges as "left right", a space inside a piece
//     written U+0120 as the script does.
//   - tokenizer.ggml.pre: "gpt-2", "llama-bpe" or "qwen2", recognised from the
//     pre-tokenizer's expression (the script recognises a tokenizer by hashing the ids it
//     gives for a test text, which needs the Hugging Face library); any other
//     pre-tokenizer is refused.
//   - bos, eos and unknown token ids: the added token whose text tokenizer_config.json
//     names for bos_token, eos_token and unk_token; add_bos_token and add_eos_token when
//     tokenizer_config.json sets them.
//
// The vocabulary size comes from the tokenizer alone: the script pads to config.json's
// vocab_size, which the files read here do not carry.
func HFMetadata(tokenizerJSON, tokenizerConfigJSON []byte) ([]gguf.KV, error) {
	var hf hfFile
	if err := json.Unmarshal(tokenizerJSON, &hf); err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer.json: %w", err)
	}
	if hf.Model.Type != "BPE" {
		return nil, fmt.Errorf("tokenizer: tokenizer.json: model type %q is not BPE", hf.Model.Type)
	}
	pre, err := hfPre(hf.PreTokenizer)
	if err != nil {
		return nil, err
	}

	n := 0
	for _, id := range hf.Model.Vocab {
		n = max(n, id+1)
	}
	for _, a := range hf.AddedTokens {
		n = max(n, a.ID+1)
	}
	tokens, types := make([]string, n), make([]int32, n)
	for text, id := range hf.Model.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("tokenizer: tokenizer.json: token %q has id %d", text, id)
		}
		if types[id] != TypeUndefined {
			return nil, fmt.Errorf("tokenizer: tokenizer.json: tokens %q and %q share id %d", min(text, tokens[id]), max(text, tokens[id]), id)
		}
		tokens[id], types[id] = text, TypeNormal
	}
	added := map[string]int{}
	for _, a := range hf.AddedTokens {
		if a.ID < 0 {
			return nil, fmt.Errorf("tokenizer: tokenizer.json: added token %q has id %d", a.Content, a.ID)
		}
		if _, ok := added[a.Content]; !ok {
			added[a.Content] = a.ID
		}
		if a.Special || looksSpecial(a.Content) {
			tokens[a.ID], types[a.ID] = a.Content, TypeControl
		} else {
			tokens[a.ID], types[a.ID] = strings.ReplaceAll(a.Content, spaceMarker, " "), TypeUserDefined
		}
	}
	for id := range tokens {
		if types[id] == TypeUndefined {
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), TypeUnused
		}
	}

	merges := make([]string, len(hf.Model.Merges))
	spaced := strings.NewReplacer(" ", "\u0120")
	for i, raw := range hf.Model.Merges {
		var pair []string
		switch {
		case len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &merges[i]) == nil:
		case len(raw) > 0 && raw[0] == '[' && json.Unmarshal(raw, &pair) == nil && len(pair) == 2:
			merges[i] = spaced.Replace(pair[0]) + " " + spaced.Replace(pair[1])
		default:
			return nil, fmt.Errorf("tokenizer: tokenizer.json: merge %d is neither \"a b\" nor [\"a\", \"b\"]: %s", i, raw)
		}
	}

	kvs := []gguf.KV{
		{Key: KeyModel, Value: gguf.ValueOf(ModelGPT2)},
		{Key: KeyPre, Value: gguf.ValueOf(pre)},
		{Key: KeyTokens, Value: gguf.ArrayOf(tokens)},
		{Key: KeyTypes, Value: gguf.ArrayOf(types)},
		{Key: KeyMerges, Value: gguf.ArrayOf(merges)},
	}
	special, err := hfSpecial(tokenizerConfigJSON, added)
	if err != nil {
		return nil, err
	}
	return append(kvs, special...), nil
}

// hfPre recognises the pre-tokenizer of tokenizer.json.
func hfPre(raw json.RawMessage) (string, error) {
	var p hfPreStep
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", fmt.Errorf("tokenizer: tokenizer.json: pre_tokenizer: %w", err)
	}
	byteLevel := func(p hfPreStep, useRegex bool) bool {
		return p.Type == "ByteLevel" && (p.UseRegex == nil || *p.UseRegex) == useRegex
	}
	switch {
	case byteLevel(p, true):
		return "gpt-2", nil
	case p.Type == "Sequence" && len(p.PreTokenizers) == 2 && byteLevel(p.PreTokenizers[1], false):
		split := p.PreTokenizers[0]
		if split.Type == "Split" && split.Behavior == "Isolated" && !split.Invert {
			switch split.Pattern.Regex {
			case hfRegexLlama3:
				return "llama-bpe", nil
			case hfRegexQwen2:
				return "qwen2", nil
			}
		}
	}
	const limit = 200
	s := string(raw)
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return "", fmt.Errorf("tokenizer: tokenizer.json: pre_tokenizer is none of GPT-2's, Llama 3's or Qwen2's: %s", s)
}

// hfSpecial reads the special token ids and add flags of tokenizer_config.json, as gguf-py's
// SpecialVocab does: a token named by text is looked up among the added tokens.
func hfSpecial(configJSON []byte, added map[string]int) ([]gguf.KV, error) {
	if configJSON == nil {
		return nil, nil
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(configJSON, &cfg); err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer_config.json: %w", err)
	}
	var kvs []gguf.KV
	for _, s := range []struct{ typ, key string }{{"bos", KeyBOS}, {"eos", KeyEOS}, {"unk", KeyUNK}} {
		var name string
		var entry struct {
			Content *string `json:"content"`
		}
		raw := cfg[s.typ+"_token"]
		switch {
		case raw == nil:
		case json.Unmarshal(raw, &name) == nil:
		case json.Unmarshal(raw, &entry) == nil && entry.Content != nil:
			name = *entry.Content
		}
		if id, ok := added[name]; ok && name != "" {
			kvs = append(kvs, gguf.KV{Key: s.key, Value: gguf.ValueOf(uint32(id))})
		}
	}
	for _, s := range []struct{ typ, key string }{{"bos", KeyAddBOS}, {"eos", KeyAddEOS}} {
		var add bool
		if raw, ok := cfg["add_"+s.typ+"_token"]; ok && json.Unmarshal(raw, &add) == nil {
			kvs = append(kvs, gguf.KV{Key: s.key, Value: gguf.ValueOf(add)})
		}
	}
	return kvs, nil
}

// looksSpecial is convert_hf_to_gguf.py's does_token_look_special: added tokens that some
// models fail to mark special although they are control tokens.
func looksSpecial(s string) bool {
	switch s {
	case "<pad>", "<mask>", "<2mass>", "[@BOS@]":
		return true
	}
	return strings.HasPrefix(s, "<|") && strings.HasSuffix(s, "|>") ||
		strings.HasPrefix(s, "<｜") && strings.HasSuffix(s, "｜>") ||
		strings.HasPrefix(s, "<unused") && strings.HasSuffix(s, ">")
}
