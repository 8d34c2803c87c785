package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/model"
)

// llamaVocab is the shared llama.cpp vocabulary file, next to the checkout.
func llamaVocab(t *testing.T) string {
	t.Helper()
	path := "../../../shared/testdata/vocab/ggml-vocab-llama-spm.gguf"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("llama.cpp vocabulary test data not found at %s: %v", path, err)
	}
	return path
}

func TestTokenizeLlama(t *testing.T) {
	path := llamaVocab(t)
	tests := []struct {
		args []string
		want string
	}{
		// Ids from llama.cpp's own vectors (ggml-vocab-llama-spm.gguf.out), BOS 1 added.
		{[]string{"Hello world"}, "1 15043 3186\n"},
		{[]string{"--no-bos", " Hello, world!"}, "29871 15043 29892 3186 29991\n"},
		{[]string{"--no-bos", ""}, "\n"},
		{[]string{""}, "1\n"},
		{[]string{"<s>Hello"}, "1 1 15043\n"},
		{[]string{"--no-bos", "Hello</s>"}, "15043 2\n"},
		// Without special-token parsing "<s>" is text: the pieces "▁<", "s" and ">".
		{[]string{"--no-bos", "--no-parse-special", "<s>"}, "529 29879 29958\n"},
	}
	for _, tt := range tests {
		args := append([]string{"tokenize", "--model", path}, tt.args...)
		code, out, errs := runCLI(t, args...)
		if code != exitOK || errs != "" || out != tt.want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 0, stdout %q", tt.args, code, out, errs, tt.want)
		}
	}
}

// TestTokenizeGPT2 runs the command on the shared GPT-2 vocabulary (byte-level BPE): no
// BOS by default, and <|endoftext|> parsed unless --no-parse-special.
func TestTokenizeGPT2(t *testing.T) {
	path := strings.Replace(llamaVocab(t), "llama-spm", "gpt-2", 1)
	tests := []struct {
		args []string
		want string
	}{
		// Ids from llama.cpp's own vectors (ggml-vocab-gpt-2.gguf.out).
		{[]string{"Hello world"}, "15496 995\n"},
		{[]string{" Hello, world!<|endoftext|>"}, "18435 11 995 0 50256\n"},
		{[]string{"--no-bos", "<|endoftext|>"}, "50256\n"},
	}
	for _, tt := range tests {
		args := append([]string{"tokenize", "--model", path}, tt.args...)
		code, out, errs := runCLI(t, args...)
		if code != exitOK || errs != "" || out != tt.want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 0, stdout %q", tt.args, code, out, errs, tt.want)
		}
	}
	code, out, _ := runCLI(t, "tokenize", "--model", path, "--no-parse-special", "<|endoftext|>")
	if code != exitOK || out == "50256\n" || strings.Count(out, " ") < 2 {
		t.Errorf("--no-parse-special <|endoftext|>: exit %d, stdout %q; want several ids of plain text", code, out)
	}
}

func TestTokenizeTiny(t *testing.T) {
	m, err := model.Inspect(model.TinySpec)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	text := "The river was quiet that morning."
	code, out, errs := runCLI(t, "tokenize", "--model", "tiny", text)
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var ids []int32
	for _, f := range strings.Fields(out) {
		id, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		ids = append(ids, int32(id))
	}
	if len(ids) < 2 || ids[0] != m.Tokenizer.BOS() || len(ids) > len(text)/2 {
		t.Errorf("ids %v: want BOS first and fewer than %d tokens", ids, len(text)/2)
	}
	if got := m.Tokenizer.Decode(ids[1:]); got != text {
		t.Errorf("the ids decode to %q, want %q", got, text)
	}
}

func TestTokenizeErrors(t *testing.T) {
	dir := t.TempDir()
	notGGUF := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notGGUF, []byte("just text, not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeVocab := func(name string, kvs ...gguf.KV) string {
		path := filepath.Join(dir, name)
		w := gguf.NewWriter()
		for _, kv := range kvs {
			if err := w.AddKV(kv.Key, kv.Value); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tokens := gguf.KV{Key: "tokenizer.ggml.tokens", Value: gguf.ArrayOf([]string{"a", "b"})}
	bert := writeVocab("bert.gguf", gguf.KV{Key: "tokenizer.ggml.model", Value: gguf.ValueOf("bert")}, tokens)
	falcon := writeVocab("falcon.gguf", gguf.KV{Key: "tokenizer.ggml.model", Value: gguf.ValueOf("gpt2")},
		gguf.KV{Key: "tokenizer.ggml.pre", Value: gguf.ValueOf("falcon")}, tokens,
		gguf.KV{Key: "tokenizer.ggml.merges", Value: gguf.ArrayOf([]string{})})
	tests := []struct {
		args []string
		want string // in the one line on stderr
	}{
		{[]string{"--model", "tiny"}, "want exactly one TEXT argument (quote it), got 0"},
		{[]string{"--model", "tiny", "two", "words"}, "want exactly one TEXT argument (quote it), got 2"},
		{[]string{"--model", filepath.Join(dir, "missing.gguf"), "x"}, "missing.gguf"},
		{[]string{"--model", notGGUF, "x"}, "notes.txt"},
		{[]string{"--model", bert, "x"}, `tokenizer model "bert" is not supported (only "llama", SentencePiece BPE, and "gpt2", byte-level BPE)`},
		{[]string{"--model", falcon, "x"}, `pre-tokenizer "falcon" is not supported (supported: deepseek-r1-qwen, falcon3, `},
	}
	for _, tt := range tests {
		code, out, errs := runCLI(t, append([]string{"tokenize"}, tt.args...)...)
		if code != exitUsage || out != "" || !strings.HasPrefix(errs, "gretabisect tokenize: ") ||
			strings.Count(errs, "\n") != 1 || !strings.Contains(errs, tt.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and one line containing %q", tt.args, code, out, errs, tt.want)
		}
	}
	for _, flag := range []string{"--bogus", "--special"} { // --special became the default
		if code, _, errs := runCLI(t, "tokenize", flag, "x"); code != exitUsage || errs == "" {
			t.Errorf("%s: exit %d, stderr %q", flag, code, errs)
		}
	}
}
