package model

import (
	"testing"

	"github.com/gretabisect/gretabisect/internal/gguf"
)

// FuzzFromFile feeds FromFile every file the GGUF reader accepts: whatever the metadata and
// tensors say, it binds them or refuses with an error, and never panics.
func FuzzFromFile(f *testing.F) {
	f.Add(newFixture().bytes(f))
	tied := newFixture()
	tied.dropTensor("output.weight")
	tied.setKV("llama.rope.dimension_count", gguf.ValueOf(uint32(2)))
	f.Add(tied.bytes(f))
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
