package tokenizer

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/internal/gguf"
)

// parseKVs writes kvs into a GGUF image and parses it back.
func parseKVs(t *testing.T, kvs []gguf.KV) *gguf.File {
	t.Helper()
	w := gguf.NewWriter()
	if err := writeKVs(w, kvs); err != nil {
		t.Fatal(err)
	}
	f, err := parseImage(w)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestMetadataRoundTrip(t *testing.T) {
	v, err := Train("the cat sat on the mat", 300)
	if err != nil {
		t.Fatal(err)
	}
	for _, edit := range []func(*Vocab){
		func(*Vocab) {},
		func(v *Vocab) { v.AddBOS, v.AddEOS, v.AddSpacePrefix = false, true, false },
	} {
		want := v
		edit(&want)
		tok, err := FromGGUF(parseKVs(t, want.Metadata()))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, tok.Vocab()); diff != "" {
			t.Errorf("FromGGUF(Metadata()) (-want +got):\n%s", diff)
		}
	}
}

func TestFromGGUFDefaults(t *testing.T) {
	tokens := []string{"<unk>", "<s>", "</s>", "a"}
	tok, err := FromGGUF(parseKVs(t, []gguf.KV{
		{Key: KeyModel, Value: gguf.ValueOf("llama")},
		{Key: KeyTokens, Value: gguf.ArrayOf(tokens)},
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Vocab{Model: ModelLlama, Tokens: tokens, BOS: 1, EOS: 2, UNK: 0, AddBOS: true, AddSpacePrefix: true}
	if diff := cmp.Diff(want, tok.Vocab()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestFromGGUFRefuses(t *testing.T) {
	base := func() []gguf.KV {
		return []gguf.KV{
			{Key: KeyModel, Value: gguf.ValueOf("llama")},
			{Key: KeyTokens, Value: gguf.ArrayOf([]string{"<unk>", "<s>", "</s>"})},
		}
	}
	set := func(kvs []gguf.KV, key string, v gguf.Value) []gguf.KV {
		for i := range kvs {
			if kvs[i].Key == key {
				kvs[i].Value = v
				return kvs
			}
		}
		return append(kvs, gguf.KV{Key: key, Value: v})
	}
	tests := []struct {
		reason string
		kvs    []gguf.KV
		want   string
	}{
		{"no tokenizer model", base()[1:], `tokenizer: gguf: key "tokenizer.ggml.model": not found`},
		{"bert", set(base(), KeyModel, gguf.ValueOf("bert")), `tokenizer: key "tokenizer.ggml.model": tokenizer model "bert" is not supported (only "llama", SentencePiece BPE, and "gpt2", byte-level BPE)`},
		{"gpt2 without merges", set(base(), KeyModel, gguf.ValueOf("gpt2")), `tokenizer: gguf: key "tokenizer.ggml.merges": not found`},
		{"no tokens", base()[:1], `key "tokenizer.ggml.tokens": not found`},
		{"tokens of the wrong type", set(base(), KeyTokens, gguf.ArrayOf([]int32{1, 2})), `key "tokenizer.ggml.tokens"`},
		{"scores of the wrong type", set(base(), KeyScores, gguf.ArrayOf([]int32{1, 2, 3})), `key "tokenizer.ggml.scores"`},
		{"scores of the wrong length", set(base(), KeyScores, gguf.ArrayOf([]float32{0})), "1 scores for 3 tokens"},
		{"types of the wrong type", set(base(), KeyTypes, gguf.ArrayOf([]string{"x"})), `key "tokenizer.ggml.token_type"`},
		{"BOS out of range", set(base(), KeyBOS, gguf.ValueOf(uint32(3))), `key "tokenizer.ggml.bos_token_id": token id 3 out of range (3 tokens)`},
		{"EOS of the wrong type", set(base(), KeyEOS, gguf.ValueOf("2")), `key "tokenizer.ggml.eos_token_id"`},
		{"UNK negative", set(base(), KeyUNK, gguf.ValueOf(int32(-1))), `key "tokenizer.ggml.unknown_token_id"`},
		{"add_bos_token of the wrong type", set(base(), KeyAddBOS, gguf.ValueOf(uint8(1))), `key "tokenizer.ggml.add_bos_token"`},
		{"a token type New refuses", set(base(), KeyTypes, gguf.ArrayOf([]int32{2, 3, 9})), `token 2 "</s>": unknown token type 9`},
	}
	for _, tt := range tests {
		_, err := FromGGUF(parseKVs(t, tt.kvs))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: FromGGUF error = %v, want it to contain %q", tt.reason, err, tt.want)
		}
	}
}
