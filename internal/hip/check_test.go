package hip

import (
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/model/layout"
)

// handModel builds a consistent two-layer model by hand, with distinct values.
func handModel() *model.Model {
	c := model.Config{Arch: "llama", NLayer: 2, Dim: 8, FFNDim: 12, NHead: 2, NHeadKV: 1, HeadDim: 4, RopeDim: 4,
		RopeBase: 10000, Eps: 1e-5, CtxLen: 16, Vocab: 10}
	seq := 0
	mat := func(name string, rows, cols int) model.Matrix {
		d := make([]float32, rows*cols)
		for i := range d {
			seq++
			d[i] = float32(seq%17-8) / 16
		}
		return model.Matrix{Name: name, Rows: rows, Cols: cols, Data: d}
	}
	ones := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1
		}
		return v
	}
	w := &model.Weights{TokEmbd: mat("token_embd.weight", c.Vocab, c.Dim), OutNorm: ones(c.Dim)}
	w.Output = w.TokEmbd
	for range c.NLayer {
		w.Layers = append(w.Layers, model.Layer{
			AttnNorm: ones(c.Dim), FFNNorm: ones(c.Dim),
			Wq: mat("attn_q", 8, 8), Wk: mat("attn_k", 4, 8), Wv: mat("attn_v", 4, 8), Wo: mat("attn_output", 8, 8),
			WGate: mat("ffn_gate", 12, 8), WUp: mat("ffn_up", 12, 8), WDown: mat("ffn_down", 8, 12),
		})
	}
	return &model.Model{Model: engine.Model{Config: c, Weights: w}}
}

// TestCheckModel: the backend refuses what model.Check refuses, and what its 32-bit
// indexing cannot address, before any device work.
func TestCheckModel(t *testing.T) {
	if err := checkModel(&handModel().Model); err != nil {
		t.Fatalf("checkModel(consistent model) = %v, want nil", err)
	}
	tests := []struct {
		name   string
		break_ func(m *model.Model)
		want   string
	}{
		{"key projection one head short", func(m *model.Model) {
			k := &m.Weights.Layers[1].Wk
			k.Name, k.Rows, k.Data = "blk.1.attn_k.weight", 2, k.Data[:16]
		}, `hip: model: tensor "blk.1.attn_k.weight": 2x8 with 16 values, the config wants 4x8`},
		{"no weights", func(m *model.Model) { m.Weights = nil }, "hip: model: no weights"},
		{"rope frequency factors", func(m *model.Model) { m.Config.RopeFreqs, m.Weights.RopeFreqs = true, []float32{1, 2} },
			"hip: llama model with rope style norm, rope_freqs true, rope scaling 0, q/k/v biases false: not implemented by the kernels yet"},
		{"qwen2", func(m *model.Model) {
			m.Config.Arch, m.Config.RopeStyle, m.Config.QKVBias = "qwen2", layout.RopeNeox, true
			for l := range m.Weights.Layers {
				L := &m.Weights.Layers[l]
				L.Bq, L.Bk, L.Bv = make([]float32, 8), make([]float32, 4), make([]float32, 4)
			}
		}, "hip: qwen2 model with rope style neox, rope_freqs false, rope scaling 0, q/k/v biases true: not implemented"},
		{"linear rope scaling", func(m *model.Model) { m.Config.RopeScale = 4 }, "rope scaling 4, q/k/v biases false: not implemented"},
		{"context beyond 32-bit indexing", func(m *model.Model) { m.Config.CtxLen = 1 << 28 },
			"elements is beyond 32-bit indexing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := handModel()
			tc.break_(m)
			err := checkModel(&m.Model)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("checkModel() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
