package model

import (
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/model/layout"
)

// handModel builds a consistent two-layer model by hand, as tests and generators do.
func handModel() *Model {
	c := Config{Arch: "llama", NLayer: 2, Dim: 8, FFNDim: 12, NHead: 2, NHeadKV: 1, HeadDim: 4, RopeDim: 4,
		RopeBase: 10000, Eps: 1e-5, CtxLen: 16, Vocab: 10, TiedOutput: true}
	mat := func(name string, rows, cols int) Matrix {
		return Matrix{Name: name, Rows: rows, Cols: cols, Data: make([]float32, rows*cols)}
	}
	w := &Weights{TokEmbd: mat("token_embd.weight", c.Vocab, c.Dim), OutNorm: make([]float32, c.Dim)}
	w.Output = w.TokEmbd
	for l := range c.NLayer {
		blk := "blk." + string(rune('0'+l)) + "."
		w.Layers = append(w.Layers, Layer{
			AttnNorm: make([]float32, c.Dim), FFNNorm: make([]float32, c.Dim),
			Wq: mat(blk+"attn_q.weight", 8, 8), Wk: mat(blk+"attn_k.weight", 4, 8), Wv: mat(blk+"attn_v.weight", 4, 8),
			Wo: mat(blk+"attn_output.weight", 8, 8), WGate: mat(blk+"ffn_gate.weight", 12, 8),
			WUp: mat(blk+"ffn_up.weight", 12, 8), WDown: mat(blk+"ffn_down.weight", 8, 12),
		})
	}
	return &Model{Model: engine.Model{Config: c, Weights: w}}
}

// handQwen is handModel as a qwen2 model: NEOX RoPE and q/k/v biases.
func handQwen() *Model {
	m := handModel()
	m.Config.Arch, m.Config.RopeStyle, m.Config.QKVBias = "qwen2", layout.RopeNeox, true
	for l := range m.Weights.Layers {
		L := &m.Weights.Layers[l]
		L.Bq, L.Bk, L.Bv = make([]float32, 8), make([]float32, 4), make([]float32, 4)
	}
	return m
}

// handLlama3 is handModel with RoPE frequency factors.
func handLlama3() *Model {
	m := handModel()
	m.Config.RopeFreqs = true
	m.Weights.RopeFreqs = []float32{1, 8}
	return m
}

// TestCheck: every way a hand-built model can disagree with its configuration is refused
// with the tensor or the setting named.
func TestCheck(t *testing.T) {
	for _, m := range []*Model{handModel(), handQwen(), handLlama3()} {
		if err := Check(&m.Model); err != nil {
			t.Fatalf("Check(consistent %s model) = %v, want nil", m.Config.Arch, err)
		}
	}
	tests := []struct {
		name   string
		break_ func(m *Model)
		want   string
	}{
		{"unsupported architecture", func(m *Model) { m.Config.Arch = "phi3" },
			`model: architecture "phi3" is not supported (supported: llama, qwen2)`},
		{"qwen2 with llama's rope", func(m *Model) { *m = *handQwen(); m.Config.RopeStyle = layout.RopeNorm },
			"model: config of qwen2 with rope style norm, q/k/v biases true, rope_freqs false; qwen2 wants rope style neox, biases true"},
		{"qwen2 without biases", func(m *Model) { *m = *handQwen(); m.Config.QKVBias = false },
			"qwen2 wants rope style neox, biases true"},
		{"llama with neox", func(m *Model) { m.Config.RopeStyle = layout.RopeNeox }, "llama wants rope style norm, biases false"},
		{"qwen2 with rope_freqs", func(m *Model) { *m = *handQwen(); m.Config.RopeFreqs = true }, "rope_freqs true; qwen2 wants"},
		{"qwen2 k bias missing", func(m *Model) { *m = *handQwen(); m.Weights.Layers[1].Bk = nil },
			`model: tensor "blk.1.attn_k.bias": 0 values, the config wants 4`},
		{"qwen2 q bias short", func(m *Model) { *m = *handQwen(); m.Weights.Layers[0].Bq = make([]float32, 4) },
			`model: tensor "blk.0.attn_q.bias": 4 values, the config wants 8`},
		{"llama with a v bias", func(m *Model) { m.Weights.Layers[1].Bv = make([]float32, 4) },
			"model: layer 1 has q/k/v biases but the config has none"},
		{"rope_freqs short", func(m *Model) { *m = *handLlama3(); m.Weights.RopeFreqs = m.Weights.RopeFreqs[:1] },
			`model: tensor "rope_freqs.weight": 1 values, the config wants 2`},
		{"rope_freqs not in the config", func(m *Model) { *m = *handLlama3(); m.Config.RopeFreqs = false },
			`model: tensor "rope_freqs.weight" present but the config has no RoPE frequency factors`},
		{"rope_freqs zero", func(m *Model) { *m = *handLlama3(); m.Weights.RopeFreqs[0] = 0 },
			`model: tensor "rope_freqs.weight": factor 0 is 0, want a positive finite value`},
		{"negative rope scale", func(m *Model) { m.Config.RopeScale = -1 },
			"model: rope scaling factor -1 must be positive and finite (0 for none)"},
		{"key projection one head short", func(m *Model) {
			k := &m.Weights.Layers[1].Wk
			k.Rows, k.Data = 2, k.Data[:16]
		}, `model: tensor "blk.1.attn_k.weight": 2x8 with 16 values, the config wants 4x8`},
		{"rows and data disagree", func(m *Model) {
			d := &m.Weights.Layers[0].WDown
			d.Data = d.Data[:len(d.Data)-1]
		}, `tensor "blk.0.ffn_down.weight": 8x12 with 95 values, the config wants 8x12`},
		{"unnamed matrix", func(m *Model) { m.Weights.Layers[0].WUp = Matrix{} },
			`tensor "blk.0.ffn_up.weight": 0x0 with 0 values, the config wants 12x8`},
		{"fewer layers than block_count", func(m *Model) { m.Config.NLayer = 3 }, "2 layers of weights, block_count 3"},
		{"short norm", func(m *Model) { m.Weights.Layers[1].FFNNorm = m.Weights.Layers[1].FFNNorm[:7] },
			`tensor "blk.1.ffn_norm.weight": 7 values, the config wants 8`},
		{"short output norm", func(m *Model) { m.Weights.OutNorm = nil },
			`tensor "output_norm.weight": 0 values, the config wants 8`},
		{"heads not grouped", func(m *Model) { m.Config.NHeadKV = 3 }, "head_count 2 is not a multiple of head_count_kv 3"},
		{"head_dim off", func(m *Model) { m.Config.HeadDim = 2 }, "head_dim 2 x head_count 2 != embedding_length 8"},
		{"odd rope", func(m *Model) { m.Config.RopeDim = 3 }, "rope dimension 3 must be even"},
		{"rope past the head", func(m *Model) { m.Config.RopeDim = 6 }, "rope dimension 6 must be even and in 2..head_dim 4"},
		{"rope base zero", func(m *Model) { m.Config.RopeBase = 0 }, "rope freq_base 0 must be positive and finite"},
		{"zero context", func(m *Model) { m.Config.CtxLen = 0 }, "every dimension must be positive"},
		{"vocabulary larger than the embedding", func(m *Model) { m.Config.Vocab = 11 },
			`tensor "token_embd.weight": 10x8 with 80 values, the config wants 11x8`},
		{"tied output of another shape", func(m *Model) {
			m.Weights.Output = Matrix{Name: "output.weight", Rows: 9, Cols: 8, Data: make([]float32, 72)}
		}, `tensor "output.weight": 9x8 with 72 values, the config wants 10x8`},
		{"untied output missing", func(m *Model) { m.Config.TiedOutput = false; m.Weights.Output = Matrix{} },
			`tensor "output.weight": 0x0 with 0 values, the config wants 10x8`},
		{"no weights", func(m *Model) { m.Weights = nil }, "model: no weights"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := handModel()
			tc.break_(m)
			err := Check(&m.Model)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestLoadedModelPassesCheck: what Load binds is what Check accepts.
func TestLoadedModelPassesCheck(t *testing.T) {
	m, err := Open(TinySpec)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := Check(&m.Model); err != nil {
		t.Errorf("Check(%s) = %v", TinySpec, err)
	}
}
