package gguf

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// sharedTestdata returns ../shared/testdata relative to the repository root (the folder
// holding go.mod above this package), skipping the test when it is absent.
func sharedTestdata(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("no go.mod above the package: cannot locate ../shared/testdata")
		}
		dir = parent
	}
	td := filepath.Join(dir, "..", "shared", "testdata")
	if _, err := os.Stat(td); err != nil {
		t.Skipf("shared test data not present at %s: %v", td, err)
	}
	return td
}

func vocabPath(t testing.TB) string {
	t.Helper()
	p := filepath.Join(sharedTestdata(t), "vocab", "ggml-vocab-llama-spm.gguf")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("vocab file absent: %v", err)
	}
	return p
}

func TestLlamaVocabFile(t *testing.T) {
	path := vocabPath(t)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Version != 3 || len(f.KVs) != 22 || len(f.Tensors) != 0 {
		t.Errorf("version %d, %d keys, %d tensors; want 3, 22, 0", f.Version, len(f.KVs), len(f.Tensors))
	}
	model, err := f.String("tokenizer.ggml.model")
	if err != nil || model != "llama" {
		t.Errorf("tokenizer.ggml.model = %q, %v; want \"llama\"", model, err)
	}
	tokens, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil || len(tokens) != 32000 {
		t.Fatalf("tokens: %d, %v; want 32000", len(tokens), err)
	}
	for id, want := range map[int]string{0: "<unk>", 1: "<s>", 2: "</s>", 3: "<0x00>", 13: "<0x0A>"} {
		if tokens[id] != want {
			t.Errorf("token %d = %q, want %q", id, tokens[id], want)
		}
	}
	scores, err := f.Float32s("tokenizer.ggml.scores")
	if err != nil || len(scores) != 32000 {
		t.Errorf("scores: %d, %v; want 32000", len(scores), err)
	}
	types, err := f.Int32s("tokenizer.ggml.token_type")
	if err != nil || len(types) != 32000 || types[1] != 3 || types[3] != 6 || types[1000] != 1 {
		t.Errorf("token types: len %d, %v (types[1,3,1000] want 3 control, 6 byte, 1 normal)", len(types), err)
	}
	for key, want := range map[string]uint64{"tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2, "llama.block_count": 32} {
		if got, err := f.Uint(key); err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", key, got, err, want)
		}
	}
	// A metadata-only file is re-written byte for byte.
	w, err := FromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := w.Write(&buf); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(orig, buf.Bytes()) {
		t.Errorf("re-written vocab file differs: %d bytes, want %d", buf.Len(), len(orig))
	}
}
