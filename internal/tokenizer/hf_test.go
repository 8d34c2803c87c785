package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// hfJSON writes a tokenizer.json of the 256 byte characters plus vocab (ids from 256),
// with merges, added tokens and a pre-tokenizer.
func hfJSON(t *testing.T, vocab []string, merges any, added []map[string]any, pre any) []byte {
	t.Helper()
	ids := map[string]int{}
	for i, b := range byteOrder {
		ids[byteChars[b]] = i
	}
	for i, s := range vocab {
		ids[s] = 256 + i
	}
	b, err := json.Marshal(map[string]any{
		"model":         map[string]any{"type": "BPE", "vocab": ids, "merges": merges},
		"added_tokens":  added,
		"pre_tokenizer": pre,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sequencePre(regex string) any {
	return map[string]any{"type": "Sequence", "pretokenizers": []any{
		map[string]any{"type": "Split", "pattern": map[string]any{"Regex": regex}, "behavior": "Isolated", "invert": false},
		map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false},
	}}
}

func TestHFMetadata(t *testing.T) {
	added := []map[string]any{
		{"id": 258, "content": "<|start|>", "special": true, "normalized": false},
		{"id": 259, "content": "<|looks|>", "special": false, "normalized": false},
		{"id": 260, "content": "▁user▁text", "special": false, "normalized": true},
		{"id": 262, "content": "<unused0>", "special": false, "normalized": false},
	}
	tj := hfJSON(t, []string{"ab", "Ġab"}, [][]string{{"a", "b"}, {"Ġ", "ab"}}, added, sequencePre(hfRegexLlama3))
	cfg := []byte(`{"bos_token": "<|start|>", "eos_token": {"content": "<|looks|>"}, "unk_token": null, "add_bos_token": false}`)
	kvs, err := HFMetadata(tj, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, kv := range kvs {
		got[kv.Key] = kv.Value.Interface()
	}
	var tokens []string
	for _, b := range byteOrder {
		tokens = append(tokens, byteChars[b])
	}
	tokens = append(tokens, "ab", "Ġab", "<|start|>", "<|looks|>", " user text", "[PAD261]", "<unused0>")
	types := make([]int32, 256+2)
	for i := range types {
		types[i] = TypeNormal
	}
	types = append(types, TypeControl, TypeControl, TypeUserDefined, TypeUnused, TypeControl)
	want := map[string]any{
		KeyModel: "gpt2", KeyPre: "llama-bpe", KeyTokens: tokens, KeyTypes: types,
		KeyMerges: []string{"a b", "Ġ ab"}, KeyBOS: uint32(258), KeyEOS: uint32(259), KeyAddBOS: false,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("HFMetadata (-want +got):\n%s", diff)
	}

	// The older merge format, a space inside a piece, the other pre-tokenizers.
	for _, c := range []struct {
		pre    any
		merges any
		want   []string
		pname  string
	}{
		{map[string]any{"type": "ByteLevel", "add_prefix_space": false}, []string{"a b"}, []string{"a b"}, "gpt-2"},
		{sequencePre(hfRegexQwen2), [][]string{{"a b", "c"}}, []string{"aĠb c"}, "qwen2"},
	} {
		kvs, err := HFMetadata(hfJSON(t, []string{"ab", "aĠbc"}, c.merges, nil, c.pre), nil)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]any{}
		for _, kv := range kvs {
			got[kv.Key] = kv.Value.Interface()
		}
		if got[KeyPre] != c.pname || !cmp.Equal(got[KeyMerges], c.want) || got[KeyBOS] != nil {
			t.Errorf("pre %v: pre %v merges %q BOS %v, want %s %q none", c.pre, got[KeyPre], got[KeyMerges], got[KeyBOS], c.pname, c.want)
		}
	}
}

func TestHFMetadataRefuses(t *testing.T) {
	gpt2 := map[string]any{"type": "ByteLevel"}
	tests := []struct {
		reason string
		tj     []byte
		cfg    string
		want   string
	}{
		{"not JSON", []byte("{"), "", "tokenizer.json: unexpected end of JSON input"},
		{"not BPE", []byte(`{"model": {"type": "Unigram"}}`), "", `model type "Unigram" is not BPE`},
		{"another pre-tokenizer", hfJSON(t, nil, []string{}, nil, sequencePre(`\s+`)), "",
			`pre_tokenizer is none of GPT-2's, Llama 3's or Qwen2's: {"pretokenizers"`},
		{"Metaspace", hfJSON(t, nil, []string{}, nil, map[string]any{"type": "Metaspace"}), "", "none of GPT-2's"},
		{"a bad merge", hfJSON(t, nil, []any{1}, nil, gpt2), "", `merge 0 is neither "a b" nor ["a", "b"]: 1`},
		{"a shared id", []byte(`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}}`),
			"", `tokens "a" and "b" share id 0`},
		{"a bad config", hfJSON(t, nil, []string{}, nil, gpt2), "[", "tokenizer_config.json: unexpected end of JSON input"},
	}
	for _, tt := range tests {
		var cfg []byte
		if tt.cfg != "" {
			cfg = []byte(tt.cfg)
		}
		_, err := HFMetadata(tt.tj, cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line containing %q", tt.reason, err, tt.want)
		}
	}
}

// TestHFSpecial checks the special tokens of the real Llama 3 and Qwen3 vocabularies: ids,
// types, BOS and EOS, and how Encode treats their texts. "Hello" is 9906 (Llama 3) and
// 9707 (Qwen) in llama.cpp's test vectors.
func TestHFSpecial(t *testing.T) {
	type encodeCase struct {
		text         string
		add, special bool
		want         []int32 // nil: not one token, and decodes back to the text
	}
	check := func(t *testing.T, tok *Tokenizer, cases []encodeCase) {
		t.Helper()
		for _, c := range cases {
			got := tok.Encode(c.text, c.add, c.special)
			if c.want == nil {
				if len(got) < 2 || tok.Decode(got) != c.text {
					t.Errorf("Encode(%q, %v, %v) = %v, want plain text that decodes back", c.text, c.add, c.special, got)
				}
				continue
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("Encode(%q, %v, %v) = %v, want %v", c.text, c.add, c.special, got, c.want)
			}
		}
	}
	t.Run("llama3", func(t *testing.T) {
		tok := hfTokenizer(t, "llama3")
		if tok.Size() != 128256 || tok.BOS() != 128000 || tok.EOS() != 128001 || !tok.Vocab().AddBOS {
			t.Errorf("Size %d BOS %d EOS %d AddBOS %v; want 128256 128000 128001 true",
				tok.Size(), tok.BOS(), tok.EOS(), tok.Vocab().AddBOS)
		}
		check(t, tok, []encodeCase{
			{"Hello", true, false, []int32{128000, 9906}},
			{"<|begin_of_text|>Hello", false, true, []int32{128000, 9906}},
			{"Hello<|eot_id|>", false, true, []int32{9906, 128009}},
			{"<|eot_id|>", false, false, nil},
		})
		checkFamily(t, tok, Llama3)
	})
	t.Run("qwen3", func(t *testing.T) {
		tok := hfTokenizer(t, "qwen3")
		// No bos_token in tokenizer_config.json: llama.cpp's default BOS 11 stays, unused.
		if tok.Size() != 151669 || tok.BOS() != 11 || tok.EOS() != 151645 || tok.Vocab().AddBOS {
			t.Errorf("Size %d BOS %d EOS %d AddBOS %v; want 151669 11 151645 false",
				tok.Size(), tok.BOS(), tok.EOS(), tok.Vocab().AddBOS)
		}
		check(t, tok, []encodeCase{
			{"Hello", true, false, []int32{9707}},
			{"Hello<think>", false, false, []int32{9707, 151667}}, // user-defined: always
			{"<|im_start|>Hello", false, true, []int32{151644, 9707}},
			{"<|im_start|>", false, false, nil},
		})
		checkFamily(t, tok, Qwen2) // Qwen3 adds 4 tokens after Qwen2's 22
	})
}

// checkFamily checks that f's special tokens and pre-tokenizer are the real vocabulary's.
func checkFamily(t *testing.T, tok *Tokenizer, f Family) {
	t.Helper()
	v := tok.Vocab()
	for _, s := range f.Specials {
		if v.Tokens[s.ID] != s.Text || v.Types[s.ID] != s.Type {
			t.Errorf("%s: token %d is %q of type %d, the real vocabulary has %q of type %d",
				f.Name, s.ID, s.Text, s.Type, v.Tokens[s.ID], v.Types[s.ID])
		}
	}
	for _, s := range []string{f.BOS, f.EOS} {
		if id, ok := tok.ids[s]; !ok || v.Types[id] != TypeControl {
			t.Errorf("%s: BOS/EOS %q is not a control token of the real vocabulary", f.Name, s)
		}
	}
	if f.Pre != v.Pre {
		t.Errorf("%s: pre-tokenizer %q, the real vocabulary's is %q", f.Name, f.Pre, v.Pre)
	}
}

// TestFromHFFiles checks that FromHF loads what HFMetadata converts, on the installed files.
func TestFromHFFiles(t *testing.T) {
	got := hfTokenizer(t, "llama3") // FromHF
	dir := hfDir(t, "llama3")
	var files [2][]byte
	for i, name := range []string{"tokenizer.json", "tokenizer_config.json"} {
		var err error
		if files[i], err = os.ReadFile(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	kvs, err := HFMetadata(files[0], files[1])
	if err != nil {
		t.Fatal(err)
	}
	want, err := FromGGUF(parseKVs(t, kvs))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.Vocab(), got.Vocab()); diff != "" {
		t.Errorf("FromHF and FromGGUF(HFMetadata) differ (-want +got):\n%s", diff)
	}
	if len(got.Vocab().Merges) != 280147 {
		t.Errorf("%d merges, want 280147 (tokenizer.json's)", len(got.Vocab().Merges))
	}
}

// TestQwenMergesFollowRanks backs the claim that Qwen2's test vectors hold for Qwen3's
// tokenizer: its merges are exactly one per regular token, in id order (merge i makes token
// 256+i), so they follow from the regular vocabulary alone, which Qwen 1.5 to 3 share
// (Qwen's tiktoken ranks; Qwen3 adds only special tokens after them).
func TestQwenMergesFollowRanks(t *testing.T) {
	tok := hfTokenizer(t, "qwen3")
	v := tok.Vocab()
	if len(v.Merges) != 151643-256 {
		t.Fatalf("%d merges, want %d", len(v.Merges), 151643-256)
	}
	for i, m := range v.Merges {
		if id := tok.ids[strings.Replace(m, " ", "", 1)]; id != int32(256+i) {
			t.Fatalf("merge %d %q makes token %d, want %d", i, m, id, 256+i)
		}
	}
}
