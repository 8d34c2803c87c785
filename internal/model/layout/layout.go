// Package layout is the one description of a Llama GGUF file: its metadata keys and the
// name and shape of every tensor. The loader (internal/model) checks files against it and
// the generator (internal/synth) writes files from it, so the two cannot drift apart.
package layout

import (
	"fmt"
	"strconv"
)

// Metadata keys, without the "<architecture>." prefix they carry in a file.
const (
	KeyBlockCount     = "block_count"
	KeyEmbeddingLen   = "embedding_length"
	KeyFeedForwardLen = "feed_forward_length"
	KeyHeadCount      = "attention.head_count"
	KeyHeadCountKV    = "attention.head_count_kv"
	KeyRopeDimCount   = "rope.dimension_count"
	KeyRopeFreqBase   = "rope.freq_base"
	KeyRMSEps         = "attention.layer_norm_rms_epsilon"
	KeyContextLen     = "context_length"
)

// Role says what a tensor is for; the loader binds by role and the generator scales by it.
type Role uint8

// Tensor roles, in the order Tensors lists them within a block.
const (
	TokEmbd Role = iota
	AttnNorm
	AttnQ
	AttnK
	AttnV
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
	TokEmbd:    "token_embd.weight",
	AttnNorm:   "attn_norm.weight",
	AttnQ:      "attn_q.weight",
	AttnK:      "attn_k.weight",
	AttnV:      "attn_v.weight",
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

// Norm reports whether the role is an RMSNorm weight vector (kept F32 in quantized files).
func (r Role) Norm() bool { return r == AttnNorm || r == FFNNorm || r == OutputNorm }

// Dims are the sizes that fix every tensor shape.
type Dims struct {
	NLayer, Dim, FFNDim, NHead, NHeadKV, Vocab int

	Tied bool // no output.weight: the output projection is token_embd
}

// HeadDim returns Dim / NHead.
func (d Dims) HeadDim() int { return d.Dim / d.NHead }

// Tensor is one required tensor.
type Tensor struct {
	Name  string
	Role  Role
	Layer int      // block index, -1 for token_embd, output_norm and output
	Shape []uint64 // GGUF order: Shape[0] is the row length (input features)
	// Why names, per dimension of Shape, the metadata that sets it ("head_count_kv=4"), for
	// errors that say where a wanted shape comes from.
	Why []string
}

// BlockName returns "blk.<layer>.<role name>".
func BlockName(layer int, r Role) string { return "blk." + strconv.Itoa(layer) + "." + r.String() }

// Tensors lists every tensor a file with dims d must hold, in file order: token_embd, then
// block by block, then output_norm and (unless tied) output.
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

	ts := make([]Tensor, 0, 3+9*d.NLayer)
	ts = append(ts, global(TokEmbd, dims(d.Dim, d.Vocab), dim, vocab))
	for l := range d.NLayer {
		for _, t := range []struct {
			r     Role
			shape []uint64
			why   []string
		}{
			{AttnNorm, dims(d.Dim), []string{dim}},
			{AttnQ, dims(d.Dim, d.Dim), []string{dim, q}},
			{AttnK, dims(d.Dim, kv), []string{dim, k}},
			{AttnV, dims(d.Dim, kv), []string{dim, k}},
			{AttnOutput, dims(d.Dim, d.Dim), []string{q, dim}},
			{FFNNorm, dims(d.Dim), []string{dim}},
			{FFNGate, dims(d.Dim, d.FFNDim), []string{dim, ffn}},
			{FFNUp, dims(d.Dim, d.FFNDim), []string{dim, ffn}},
			{FFNDown, dims(d.FFNDim, d.Dim), []string{ffn, dim}},
		} {
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
