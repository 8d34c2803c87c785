package model

import (
	"fmt"
	"testing"

	"github.com/gretabisect/gretabisect/internal/corpus"
	"github.com/gretabisect/gretabisect/internal/synth"
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

// TestOpenFamilies opens every embedded spec: each is its synth preset, named by the spec,
// with the family's architecture, tokenizer and BOS rule, generated once per process.
func TestOpenFamilies(t *testing.T) {
	want := map[string]struct {
		arch, pre string
		addBOS    bool
		tied      bool
	}{
		"tiny":        {"llama", "", true, false},
		"tiny-llama3": {"llama", "llama-bpe", true, true},
		"tiny-qwen2":  {"qwen2", "qwen2", false, true},
	}
	specs := EmbeddedSpecs()
	if len(specs) != len(want) || specs[0] != TinySpec {
		t.Fatalf("EmbeddedSpecs() = %v, want the default first and one spec per family", specs)
	}
	for _, spec := range specs {
		w, ok := want[spec]
		if !ok {
			t.Errorf("unexpected embedded spec %q", spec)
			continue
		}
		if !IsEmbedded(spec) {
			t.Errorf("IsEmbedded(%q) = false", spec)
		}
		p, err := synth.PresetByName(spec)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Open(spec)
		if err != nil {
			t.Fatalf("Open(%q): %v", spec, err)
		}
		c, v := m.Config, m.Tokenizer.Vocab()
		got := fmt.Sprintf("%s %s %d layers, dim %d, ffn %d, heads %d/%d, vocab %d, tied %v, pre %q, add_bos %v",
			m.Name, c.Arch, c.NLayer, c.Dim, c.FFNDim, c.NHead, c.NHeadKV, c.Vocab, c.TiedOutput, v.Pre, v.AddBOS)
		exp := fmt.Sprintf("%s %s %d layers, dim %d, ffn %d, heads %d/%d, vocab %d, tied %v, pre %q, add_bos %v",
			spec, w.arch, p.NLayer, p.Dim, p.FFNDim, p.NHead, p.NHeadKV, p.Vocab, w.tied, w.pre, w.addBOS)
		if got != exp {
			t.Errorf("Open(%q):\n got %s\nwant %s", spec, got, exp)
		}
		ids := m.Tokenizer.Encode(corpus.Short, true, false)
		text := ids
		if w.addBOS {
			if ids[0] != m.Tokenizer.BOS() {
				t.Errorf("%s: %v does not start with BOS %d", spec, ids, m.Tokenizer.BOS())
			}
			text = ids[1:]
		}
		if m.Tokenizer.Decode(text) != corpus.Short {
			t.Errorf("%s tokenizer: %q -> %v -> %q", spec, corpus.Short, ids, m.Tokenizer.Decode(text))
		}
		again, err := Open(spec)
		if err != nil {
			t.Fatal(err)
		}
		if &again.Weights.TokEmbd.Data[0] != &m.Weights.TokEmbd.Data[0] {
			t.Errorf("Open(%q) generated the model again, want the image cached once per process", spec)
		}
		head, err := Inspect(spec)
		if err != nil {
			t.Fatal(err)
		}
		if head.Name != spec || head.File.SHA256() != m.File.SHA256() || head.Weights != nil {
			t.Errorf("Inspect(%q): name %q, another image or weights read", spec, head.Name)
		}
	}
	for _, spec := range []string{"tiny-llama3.gguf", "Tiny", "tinyllama", "llama3.2-1b"} {
		if IsEmbedded(spec) {
			t.Errorf("IsEmbedded(%q) = true: only the small presets are generated in memory", spec)
		}
	}
}
