package model

import (
	"testing"

	"github.com/gretabisect/gretabisect/internal/corpus"
)

func TestOpenTiny(t *testing.T) {
	m, err := Open("tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := m.Config
	if m.Name != "tiny" || c.NLayer != 10 || c.Dim != 256 || c.NHead != 8 || c.NHeadKV != 2 || c.Vocab != 2048 || m.FileType != "F32" {
		t.Errorf("Open(tiny): name %q, file type %q, config %+v", m.Name, m.FileType, c)
	}
	ids := m.Tokenizer.Encode(corpus.Short, true, false)
	if len(ids) < 3 || ids[0] != m.Tokenizer.BOS() || m.Tokenizer.Decode(ids[1:]) != corpus.Short {
		t.Errorf("tiny tokenizer: %q -> %v -> %q", corpus.Short, ids, m.Tokenizer.Decode(ids[1:]))
	}
	// "" is the same model, parsed again from the same generated image.
	again, err := Open("")
	if err != nil {
		t.Fatal(err)
	}
	if &again.Weights.TokEmbd.Data[0] != &m.Weights.TokEmbd.Data[0] {
		t.Errorf("Open(\"\") generated the tiny model again, want the image cached once per process")
	}
}

func TestOpenPathIsLoad(t *testing.T) {
	if _, err := Open("/nonexistent/model.gguf"); err == nil {
		t.Errorf("Open of a missing path succeeded")
	}
}
