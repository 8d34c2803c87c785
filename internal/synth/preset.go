package synth

import (
	"fmt"

	"github.com/gretabisect/gretabisect/internal/gguf"
)

// Preset is the shape of a generated model.
type Preset struct {
	Name                                        string
	NLayer, Dim, FFNDim, NHead, NHeadKV, CtxLen int
	Vocab                                       int // the trained vocabulary is padded to this size
	RopeBase                                    float64
	Eps                                         float32
}

// The presets. Both use grouped-query attention with 4 query heads per KV head, as
// TinyLlama does.
var (
	// Tiny is the embedded default model: 10 layers (layer 8, a default trace layer,
	// exists) of width 256 with 8 heads of 32, small enough to generate in milliseconds.
	Tiny = Preset{Name: "tiny", NLayer: 10, Dim: 256, FFNDim: 768, NHead: 8, NHeadKV: 2,
		CtxLen: 2048, Vocab: TinyVocab, RopeBase: 10000, Eps: 1e-5}
	// TinyLlama has TinyLlama 1.1B's exact dimensions: 22 layers, width 2048, 32/4 heads of
	// 64, FFN 5632, 32000 tokens.
	TinyLlama = Preset{Name: "tinyllama", NLayer: 22, Dim: 2048, FFNDim: 5632, NHead: 32, NHeadKV: 4,
		CtxLen: 2048, Vocab: 32000, RopeBase: 10000, Eps: 1e-5}
)

// Presets lists the presets by name order.
var Presets = []Preset{Tiny, TinyLlama}

// PresetByName returns the preset called name.
func PresetByName(name string) (Preset, error) {
	for _, p := range Presets {
		if p.Name == name {
			return p, nil
		}
	}
	return Preset{}, fmt.Errorf("synth: unknown preset %q (want tiny or tinyllama)", name)
}

// DType is the storage type of a generated model's matrices. Norm weights stay F32 in
// every dtype, as in real quantized files.
type DType string

// The dtypes.
const (
	F32  DType = "f32"
	F16  DType = "f16"
	Q8_0 DType = "q8_0"
	Q4_K DType = "q4_k"
)

// DTypes lists the dtypes.
var DTypes = []DType{F32, F16, Q8_0, Q4_K}

// dtypeInfo maps a dtype to its ggml type and llama.cpp's general.file_type (ALL_F32,
// MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_Q4_K_S: every matrix Q4_K).
var dtypeInfo = map[DType]struct {
	typ      gguf.Type
	fileType uint32
}{
	F32:  {gguf.F32, 0},
	F16:  {gguf.F16, 1},
	Q8_0: {gguf.Q8_0, 7},
	Q4_K: {gguf.Q4_K, 14},
}

// ParseDType returns the dtype called s.
func ParseDType(s string) (DType, error) {
	if _, ok := dtypeInfo[DType(s)]; !ok {
		return "", fmt.Errorf("synth: unknown dtype %q (want f32, f16, q8_0 or q4_k)", s)
	}
	return DType(s), nil
}
