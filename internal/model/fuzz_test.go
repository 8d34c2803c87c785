package model

import (
	"testing"

	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/tokenizer"
)

// FuzzFromFile feeds FromFile every file the GGUF reader accepts: whatever the metadata and
// tensors say, it binds them or refuses with an error, and never panics.
func FuzzFromFile(f *testing.F) {
	addLoadable(f, newFixture())
	tied := newFixture()
	tied.dropTensor("output.weight")
	tied.setKV("llama.rope.dimension_count", gguf.ValueOf(uint32(2)))
	addLoadable(f, tied)
	qwen := newArchFixture("qwen2")
	qwen.setKV("qwen2.rope.scaling.factor", gguf.ValueOf(float32(2)))
	addLoadable(f, qwen)
	llama3 := newFixture()
	llama3.addRopeFreqs()
	addLoadable(f, llama3)
	// A one-layer model whose eight tokens leave bytes to <unk>: a few kilobytes to mutate.
	small := newFixture()
	small.setLayers(1)
	small.setKV("llama.block_count", gguf.ValueOf(uint32(1)))
	v := tokenizer.Vocab{Tokens: []string{"<unk>", "<s>", "</s>", "\u2581the", "a", "b", "c", "d"},
		Types: []int32{2, 3, 3, 1, 1, 1, 1, 1}, Scores: make([]float32, 8), BOS: 1, EOS: 2, UNK: 0, AddBOS: true}
	for _, kv := range v.Metadata() {
		small.setKV(kv.Key, kv.Value)
	}
	small.tensor("token_embd.weight").dims = []uint64{fxDim, 8}
	small.tensor("output.weight").dims = []uint64{fxDim, 8}
	addLoadable(f, small)
	f.Fuzz(func(t *testing.T, data []byte) {
		gf, err := gguf.Parse(data)
		if err != nil {
			return
		}
		m, err := FromFile(gf, "fuzz")
		if err != nil {
			return
		}
		// A model that loads holds every tensor at its shape.
		c := m.Config
		if len(m.Weights.Layers) != c.NLayer || len(m.Weights.TokEmbd.Data) != c.Vocab*c.Dim || len(m.Weights.OutNorm) != c.Dim {
			t.Fatalf("loaded model with config %+v has %d layers, %d embedding values, %d norm values",
				c, len(m.Weights.Layers), len(m.Weights.TokEmbd.Data), len(m.Weights.OutNorm))
		}
	})
}

// addLoadable adds fx as a seed after checking that it loads: mutations of a valid model
// reach every check.
func addLoadable(f *testing.F, fx *fixture) {
	b := fx.bytes(f)
	gf, err := gguf.Parse(b)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := FromFile(gf, "seed"); err != nil {
		f.Fatalf("seed does not load: %v", err)
	}
	f.Add(b)
}
