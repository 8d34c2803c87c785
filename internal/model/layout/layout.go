// Package layout is the one description of the GGUF files this project runs: the
// architectures, their metadata keys, and the name and shape of every tensor. The loader
// (internal/model) checks files against it and the generator (internal/synth) writes files
// from it, so the two cannot drift apart.
package layout

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/gretabisect/gretabisect/gretatest/engine"
)

// Metadata keys, without the "<architecture>." prefix they carry in a file.
const (
	KeyBlockCount     = "block_count"
	KeyEmbeddingLen   = "embedding_length"
	KeyFeedForwardLen = "feed_forward_length"
	KeyHeadCount      = "attention.head_count"
	KeyHeadCountKV    = "attention.head_count_kv"
	KeyKeyLength      = "attention.key_length"
	KeyValueLength    = "attention.value_length"
	KeyRopeDimCount   = "rope.dimension_count"
	KeyRopeFreqBase   = "rope.freq_base"
	KeyRMSEps         = "attention.layer_norm_rms_epsilon"
	KeyContextLen     = "context_length"

	// RoPE scaling, as llama.cpp reads it for every architecture: the type ("none",
	// "linear", "yarn", "longrope"; absent means linear), the factor (linear: positions
	// are divided by it; absent or 0 means 1), its older name, and YaRN's magnitude
	// factor. llama3's low and high frequency factors and original context have no keys:
	// the converter folds them into rope_freqs.weight, which is what llama.cpp runs.
	KeyRopeScalingType       = "rope.scaling.type"
	KeyRopeScalingFactor     = "rope.scaling.factor"
	KeyRopeScaleLinear       = "rope.scale_linear"
	KeyRopeScalingAttnFactor = "rope.scaling.attn_factor"
)

// RopeStyle is how RoPE pairs the elements of a head (see engine.RopeStyle).
type RopeStyle = engine.RopeStyle

// The RoPE styles.
const (
	RopeNorm = engine.RopeNorm
	RopeNeox = engine.RopeNeox
)

// Arch is what a supported general.architecture changes in a file and in the forward pass.
type Arch struct {
	Name      string    // general.architecture, also the prefix of its metadata keys
	Rope      RopeStyle // how RoPE pairs elements
	QKVBias   bool      // attn_q, attn_k and attn_v each carry a bias, required in every block
	RopeFreqs bool      // an optional rope_freqs.weight divides each pair's RoPE frequency (llama3)
}

// Archs are the supported architectures. Both have tied embeddings when output.weight is
// absent. llama.cpp also accepts optional attention and MLP biases in llama files; those are
// refused here, like any tensor this table does not name.
var Archs = []Arch{
	{Name: "llama", Rope: RopeNorm, RopeFreqs: true},
	{Name: "qwen2", Rope: RopeNeox, QKVBias: true},
}

// ArchNamed returns the architecture called name.
func ArchNamed(name string) (Arch, bool) {
	for _, a := range Archs {
		if a.Name == name {
			return a, true
		}
	}
	return Arch{}, false
}

// ArchNames lists the supported architectures' names.
func ArchNames() []string {
	names := make([]string, len(Archs))
	for i, a := range Archs {
		names[i] = a.Name
	}
	return names
}

// Role says what a tensor is for; the loader binds by role and the generator scales by it.
type Role uint8

// Tensor roles, in the order Tensors lists them within a block.
const (
	RopeFreqs Role = iota
	TokEmbd
	AttnNorm
	AttnQ
	AttnQBias
	AttnK
	AttnKBias
	AttnV
	AttnVBias
	AttnOutput
	FFNNorm
	FFNGate
	FFNUp
	FFNDown
	OutputNorm
	Output
)

// roleNames are the GGUF tensor names: global ones in full, block ones after "blk.N.".
var roleNames = [...]string{
	RopeFreqs:  "rope_freqs.weight",
	TokEmbd:    "token_embd.weight",
	AttnNorm:   "attn_norm.weight",
	AttnQ:      "attn_q.weight",
	AttnQBias:  "attn_q.bias",
	AttnK:      "attn_k.weight",
	AttnKBias:  "attn_k.bias",
	AttnV:      "attn_v.weight",
	AttnVBias:  "attn_v.bias",
	AttnOutput: "attn_output.weight",
	FFNNorm:    "ffn_norm.weight",
	FFNGate:    "ffn_gate.weight",
	FFNUp:      "ffn_up.weight",
	FFNDown:    "ffn_down.weight",
	OutputNorm: "output_norm.weight",
	Output:     "output.weight",
}

// String returns the role's tensor name suffix ("attn_k.weight").
func (r Role) String() string { return roleNames[r] }

// Norm reports whether the role is an RMSNorm weight vector.
func (r Role) Norm() bool { return r == AttnNorm || r == FFNNorm || r == OutputNorm }

// Bias reports whether the role is a projection's bias.
func (r Role) Bias() bool { return r == AttnQBias || r == AttnKBias || r == AttnVBias }

// Vector reports whether the role is a one-dimensional tensor (a norm weight, a bias or the
// RoPE frequency factors): these stay F32 in quantized files, as llama.cpp keeps them.
func (r Role) Vector() bool { return r.Norm() || r.Bias() || r == RopeFreqs }

// Dims are the sizes and options that fix the list of tensors and every shape.
type Dims struct {
	NLayer, Dim, FFNDim, NHead, NHeadKV, Vocab int
	RopeDim                                    int // rope.dimension_count: rope_freqs.weight holds RopeDim/2 factors

	Tied      bool // no output.weight: the output projection is token_embd
	QKVBias   bool // attn_q.bias, attn_k.bias, attn_v.bias in every block
	RopeFreqs bool // rope_freqs.weight
}

// HeadDim returns Dim / NHead.
func (d Dims) HeadDim() int { return d.Dim / d.NHead }

// Tensor is one required tensor.
type Tensor struct {
	Name  string
	Role  Role
	Layer int      // block index, -1 for rope_freqs, token_embd, output_norm and output
	Shape []uint64 // GGUF order: Shape[0] is the row length (input features)
	// Why names, per dimension of Shape, the metadata that sets it ("head_count_kv=4"), for
	// errors that say where a wanted shape comes from.
	Why []string
}

// BlockName returns "blk.<layer>.<role name>".
func BlockName(layer int, r Role) string { return "blk." + strconv.Itoa(layer) + "." + r.String() }

// Tensors lists every tensor a file with dims d must hold, in file order: rope_freqs (when
// present: llama.cpp's converter writes it first), token_embd, then block by block, then
// output_norm and (unless tied) output.
func Tensors(d Dims) []Tensor {
	kv := d.NHeadKV * d.HeadDim()
	dim := fmt.Sprintf("embedding_length=%d", d.Dim)
	ffn := fmt.Sprintf("feed_forward_length=%d", d.FFNDim)
	vocab := fmt.Sprintf("vocabulary size %d", d.Vocab)
	q := fmt.Sprintf("head_count=%d", d.NHead)
	k := fmt.Sprintf("head_count_kv=%d", d.NHeadKV)
	global := func(r Role, shape []uint64, why ...string) Tensor {
		return Tensor{Name: r.String(), Role: r, Layer: -1, Shape: shape, Why: why}
	}
	type blockTensor struct {
		r     Role
		shape []uint64
		why   []string
	}
	block := []blockTensor{
		{AttnNorm, dims(d.Dim), []string{dim}},
		{AttnQ, dims(d.Dim, d.Dim), []string{dim, q}},
		{AttnQBias, dims(d.Dim), []string{dim}},
		{AttnK, dims(d.Dim, kv), []string{dim, k}},
		{AttnKBias, dims(kv), []string{k}},
		{AttnV, dims(d.Dim, kv), []string{dim, k}},
		{AttnVBias, dims(kv), []string{k}},
		{AttnOutput, dims(d.Dim, d.Dim), []string{q, dim}},
		{FFNNorm, dims(d.Dim), []string{dim}},
		{FFNGate, dims(d.Dim, d.FFNDim), []string{dim, ffn}},
		{FFNUp, dims(d.Dim, d.FFNDim), []string{dim, ffn}},
		{FFNDown, dims(d.FFNDim, d.Dim), []string{ffn, dim}},
	}
	if !d.QKVBias {
		block = slices.DeleteFunc(block, func(t blockTensor) bool { return t.r.Bias() })
	}

	ts := make([]Tensor, 0, 4+len(block)*d.NLayer)
	if d.RopeFreqs {
		ts = append(ts, global(RopeFreqs, dims(d.RopeDim/2), fmt.Sprintf("rope.dimension_count=%d", d.RopeDim)))
	}
	ts = append(ts, global(TokEmbd, dims(d.Dim, d.Vocab), dim, vocab))
	for l := range d.NLayer {
		for _, t := range block {
			ts = append(ts, Tensor{Name: BlockName(l, t.r), Role: t.r, Layer: l, Shape: t.shape, Why: t.why})
		}
	}
	ts = append(ts, global(OutputNorm, dims(d.Dim), dim))
	if !d.Tied {
		ts = append(ts, global(Output, dims(d.Dim, d.Vocab), dim, vocab))
	}
	return ts
}

func dims(n ...int) []uint64 {
	out := make([]uint64, len(n))
	for i, x := range n {
		out[i] = uint64(x)
	}
	return out
}

// Mismatch explains why shape is not t.Shape: "shape [2048 512], want [2048 256] from
// head_count_kv=4", naming the metadata behind each dimension that differs (all of them
// when the number of dimensions differs). It returns "" when the shapes are equal.
func (t Tensor) Mismatch(shape []uint64) string {
	var why []string
	if len(shape) != len(t.Shape) {
		why = t.Why
	} else {
		for i := range shape {
			if shape[i] != t.Shape[i] {
				why = append(why, t.Why[i])
			}
		}
	}
	if why == nil {
		return ""
	}
	from := why[0]
	for _, w := range why[1:] {
		if w != why[0] {
			from += ", " + w
		}
	}
	return fmt.Sprintf("shape %v, want %v from %s", shape, t.Shape, from)
}
