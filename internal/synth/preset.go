package synth

import (
	"fmt"
	"strings"

	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/model/layout"
)

// Preset is the shape of a generated model.
type Preset struct {
	Name                                        string
	Arch                                        string // general.architecture: llama or qwen2 (qwen2 has q/k/v biases)
	NLayer, Dim, FFNDim, NHead, NHeadKV, CtxLen int
	Vocab                                       int       // the vocabulary is padded to this size
	VocabKind                                   VocabKind // which vocabulary the file carries
	RopeBase                                    float64
	Eps                                         float32
	Llama3                                      *Llama3Rope // llama3 RoPE scaling, as rope_freqs.weight; nil for none
	Tied                                        bool        // no output.weight: the logits use token_embd
}

// Llama3Rope is the llama3 RoPE scaling of a Hugging Face config.json's rope_scaling:
// frequencies whose wavelength exceeds OrigCtx/LowFreqFactor are divided by Factor, those
// below OrigCtx/HighFreqFactor are kept, and those between are interpolated (ropeFreqs).
type Llama3Rope struct {
	Factor, LowFreqFactor, HighFreqFactor float64
	OrigCtx                               int // original_max_position_embeddings
}

// llama32Rope is Llama 3.2's rope_scaling.
var llama32Rope = Llama3Rope{Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OrigCtx: 8192}

// The presets. The tiny ones are small enough to generate in milliseconds and run the
// standard prompts in seconds; each has 10 layers, so layer 8 (a default trace layer) exists.
var (
	// Tiny is the embedded default model: width 256 with 8 heads of 32, 2 KV heads as
	// TinyLlama's 4:1 grouping, untied.
	Tiny = Preset{Name: "tiny", Arch: "llama", NLayer: 10, Dim: 256, FFNDim: 768, NHead: 8, NHeadKV: 2,
		CtxLen: 2048, Vocab: TinyVocab, VocabKind: VocabSPM, RopeBase: 10000, Eps: 1e-5}
	// TinyLlama has TinyLlama 1.1B's exact dimensions: 22 layers, width 2048, 32/4 heads of
	// 64, FFN 5632, 32000 tokens.
	TinyLlama = Preset{Name: "tinyllama", Arch: "llama", NLayer: 22, Dim: 2048, FFNDim: 5632, NHead: 32, NHeadKV: 4,
		CtxLen: 2048, Vocab: 32000, VocabKind: VocabSPM, RopeBase: 10000, Eps: 1e-5}
	// Llama32_1B has Llama 3.2 1B's exact dimensions: 16 layers, width 2048, 32/8 heads of
	// 64, FFN 8192, 128256 tokens, RoPE base 500000 with llama3 scaling, tied embeddings.
	Llama32_1B = Preset{Name: "llama3.2-1b", Arch: "llama", NLayer: 16, Dim: 2048, FFNDim: 8192, NHead: 32, NHeadKV: 8,
		CtxLen: 131072, Vocab: 128256, VocabKind: VocabLlamaBPE, RopeBase: 500000, Eps: 1e-5, Llama3: &llama32Rope, Tied: true}
	// TinyLlama3 is Llama 3.2 in small: its 4:1 head grouping (8 heads of 32, 2 KV heads),
	// FFN 4x the width, RoPE base and llama3 scaling, tied embeddings.
	TinyLlama3 = Preset{Name: "tiny-llama3", Arch: "llama", NLayer: 10, Dim: 256, FFNDim: 1024, NHead: 8, NHeadKV: 2,
		CtxLen: 2048, Vocab: TinyVocab, VocabKind: VocabLlamaBPE, RopeBase: 500000, Eps: 1e-5, Llama3: &llama32Rope, Tied: true}
	// Qwen25_05B has Qwen2.5 0.5B's exact dimensions: 24 layers, width 896, 14/2 heads of
	// 64, FFN 4864, 151936 tokens, RoPE base 1e6, q/k/v biases, tied embeddings.
	Qwen25_05B = Preset{Name: "qwen2.5-0.5b", Arch: "qwen2", NLayer: 24, Dim: 896, FFNDim: 4864, NHead: 14, NHeadKV: 2,
		CtxLen: 32768, Vocab: 151936, VocabKind: VocabQwen2BPE, RopeBase: 1e6, Eps: 1e-6, Tied: true}
	// TinyQwen2 is Qwen2.5 in small: its 7:1 head grouping (14 heads of 32, 2 KV heads),
	// RoPE base, biases and tied embeddings, FFN 2.7x the width.
	TinyQwen2 = Preset{Name: "tiny-qwen2", Arch: "qwen2", NLayer: 10, Dim: 448, FFNDim: 1216, NHead: 14, NHeadKV: 2,
		CtxLen: 2048, Vocab: TinyVocab, VocabKind: VocabQwen2BPE, RopeBase: 1e6, Eps: 1e-6, Tied: true}
)

// Presets lists the presets by name order.
var Presets = []Preset{Llama32_1B, Qwen25_05B, Tiny, TinyLlama3, TinyQwen2, TinyLlama}

// Summary describes p in one line: "qwen2: 24 layers, width 896, 14/2 heads of 64, FFN 4864,
// 151936 tokens, NEOX RoPE base 1e+06, q/k/v biases, tied".
func (p Preset) Summary() string {
	s := fmt.Sprintf("%s: %d layers, width %d, %d/%d heads of %d, FFN %d, %d tokens, ", p.Arch, p.NLayer, p.Dim,
		p.NHead, p.NHeadKV, p.Dim/p.NHead, p.FFNDim, p.Vocab)
	a, _ := layout.ArchNamed(p.Arch)
	if a.Rope == layout.RopeNeox {
		s += "NEOX "
	}
	s += fmt.Sprintf("RoPE base %g", p.RopeBase)
	if p.Llama3 != nil {
		s += fmt.Sprintf(" with llama3 scaling x%g", p.Llama3.Factor)
	}
	if a.QKVBias {
		s += ", q/k/v biases"
	}
	if p.Tied {
		s += ", tied"
	}
	return s
}

// PresetNames lists the presets' names, in Presets order.
func PresetNames() []string {
	names := make([]string, len(Presets))
	for i, p := range Presets {
		names[i] = p.Name
	}
	return names
}

// PresetByName returns the preset called name.
func PresetByName(name string) (Preset, error) {
	for _, p := range Presets {
		if p.Name == name {
			return p, nil
		}
	}
	return Preset{}, fmt.Errorf("synth: unknown preset %q (want one of %s)", name, strings.Join(PresetNames(), ", "))
}

// DType is the storage type of a generated model's matrices. One-dimensional tensors
// (norm weights, biases, RoPE frequency factors) stay F32 in every dtype, as in real
// quantized files.
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
// MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_Q4_K_S: every matrix Q4_K). A matrix whose rows do not
// split into the type's blocks is stored as the fallback type instead, as llama.cpp's
// quantizer falls back (it picks Q5_0 for Q4_K; Q8_0 here, whose blocks of 32 divide every
// row of the presets).
var dtypeInfo = map[DType]struct {
	typ, fallback gguf.Type
	fileType      uint32
}{
	F32:  {gguf.F32, gguf.F32, 0},
	F16:  {gguf.F16, gguf.F16, 1},
	Q8_0: {gguf.Q8_0, gguf.Q8_0, 7},
	Q4_K: {gguf.Q4_K, gguf.Q8_0, 14},
}

// ParseDType returns the dtype called s.
func ParseDType(s string) (DType, error) {
	if _, ok := dtypeInfo[DType(s)]; !ok {
		return "", fmt.Errorf("synth: unknown dtype %q (want f32, f16, q8_0 or q4_k)", s)
	}
	return DType(s), nil
}

// VocabKind names the vocabulary a preset's file carries.
type VocabKind string

// The vocabulary kinds.
const (
	// VocabSPM is a SentencePiece vocabulary (tokenizer.ggml.model "llama") trained on
	// corpus.Text, as Llama 2 and TinyLlama have.
	VocabSPM VocabKind = "spm"
	// VocabLlamaBPE is a byte-level BPE vocabulary with llama.cpp's llama-bpe pre-tokenizer,
	// as Llama 3 has.
	VocabLlamaBPE VocabKind = "llama-bpe"
	// VocabQwen2BPE is a byte-level BPE vocabulary with the qwen2 pre-tokenizer.
	VocabQwen2BPE VocabKind = "qwen2"
)
