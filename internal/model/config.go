package model

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/model/layout"
)

// Defaults of the optional keys, as llama.cpp applies them.
const defaultRopeBase = 10000

// ReadConfig reads the configuration of a supported architecture (layout.Archs: llama,
// qwen2) from f's metadata and checks it. Every key is prefixed by general.architecture
// ("qwen2.block_count"). Required: block_count, embedding_length, feed_forward_length,
// attention.head_count, attention.layer_norm_rms_epsilon, context_length. Optional:
// attention.head_count_kv (default head_count), rope.dimension_count (default the head
// dimension), rope.freq_base (default 10000), attention.key_length and value_length (equal to
// the head dimension when present), and RoPE scaling: rope.scaling.type none or linear with
// rope.scaling.factor (or the older rope.scale_linear), and rope.scaling.attn_factor 1. The
// RoPE style and the q/k/v biases follow from the architecture. Vocab, TiedOutput and
// RopeFreqs come from the tensors and are left zero here.
//
// It refuses a missing or mistyped key, a zero or negative value, head_count not dividing
// embedding_length, head_count_kv not dividing head_count, an odd or oversized rope
// dimension, a key or value length other than the head dimension, RoPE scaling other than
// none or linear, and an architecture other than those supported, naming it and the list.
func ReadConfig(f *gguf.File) (Config, error) {
	var c Config
	name, err := f.String("general.architecture")
	if err != nil {
		return c, fmt.Errorf("model: %w", err)
	}
	arch, ok := layout.ArchNamed(name)
	if !ok {
		return c, fmt.Errorf("model: general.architecture %q is not supported (supported: %s)", name, strings.Join(layout.ArchNames(), ", "))
	}
	c.Arch, c.RopeStyle, c.QKVBias = arch.Name, arch.Rope, arch.QKVBias
	r := keyReader{f: f, prefix: arch.Name + "."}
	c.NLayer = r.count(layout.KeyBlockCount, 0)
	c.Dim = r.count(layout.KeyEmbeddingLen, 0)
	c.FFNDim = r.count(layout.KeyFeedForwardLen, 0)
	c.NHead = r.count(layout.KeyHeadCount, 0)
	c.NHeadKV = r.count(layout.KeyHeadCountKV, c.NHead)
	c.CtxLen = r.count(layout.KeyContextLen, 0)
	eps := r.float(layout.KeyRMSEps, math.NaN())
	c.RopeBase = r.float(layout.KeyRopeFreqBase, defaultRopeBase)
	if r.err != nil {
		return c, r.err
	}
	if !(eps > 0) || eps > 1 { // also catches NaN
		return c, fmt.Errorf("model: %s = %g, want a value in (0, 1]", r.prefix+layout.KeyRMSEps, eps)
	}
	c.Eps = float32(eps)
	if !(c.RopeBase > 0) || math.IsInf(c.RopeBase, 0) {
		return c, fmt.Errorf("model: %s = %g, want a positive finite value", r.prefix+layout.KeyRopeFreqBase, c.RopeBase)
	}
	if c.Dim%c.NHead != 0 {
		return c, fmt.Errorf("model: %s = %d does not divide %s = %d", r.prefix+layout.KeyHeadCount, c.NHead, r.prefix+layout.KeyEmbeddingLen, c.Dim)
	}
	if c.NHead%c.NHeadKV != 0 {
		return c, fmt.Errorf("model: %s = %d does not divide %s = %d", r.prefix+layout.KeyHeadCountKV, c.NHeadKV, r.prefix+layout.KeyHeadCount, c.NHead)
	}
	c.HeadDim = c.Dim / c.NHead
	c.RopeDim = r.count(layout.KeyRopeDimCount, c.HeadDim)
	for _, key := range []string{layout.KeyKeyLength, layout.KeyValueLength} {
		if n := r.count(key, c.HeadDim); r.err == nil && n != c.HeadDim {
			return c, fmt.Errorf("model: %s = %d, want the head dimension %s / %s = %d (other head widths are not supported)",
				r.prefix+key, n, r.prefix+layout.KeyEmbeddingLen, r.prefix+layout.KeyHeadCount, c.HeadDim)
		}
	}
	if r.err != nil {
		return c, r.err
	}
	if c.RopeDim%2 != 0 || c.RopeDim > c.HeadDim {
		return c, fmt.Errorf("model: %s = %d, want an even number no larger than the head dimension %d", r.prefix+layout.KeyRopeDimCount, c.RopeDim, c.HeadDim)
	}
	if c.RopeScale, err = r.ropeScaling(); err != nil {
		return c, err
	}
	return c, nil
}

// ropeScaling returns the linear RoPE scaling factor (0: none), refusing the scaling types
// and settings the engines do not implement. llama.cpp reads an absent type as linear, and
// an absent or zero factor as no scaling.
func (r *keyReader) ropeScaling() (float64, error) {
	typ := r.string(layout.KeyRopeScalingType, "linear")
	factorKey := layout.KeyRopeScalingFactor
	if _, ok := r.f.Get(r.prefix + factorKey); !ok {
		factorKey = layout.KeyRopeScaleLinear
	}
	factor := r.float(factorKey, 0)
	attn := r.float(layout.KeyRopeScalingAttnFactor, 1)
	switch {
	case r.err != nil:
		return 0, r.err
	case typ != "none" && typ != "linear":
		return 0, fmt.Errorf("model: %s = %q is not supported (want none or linear)", r.prefix+layout.KeyRopeScalingType, typ)
	case attn != 1:
		return 0, fmt.Errorf("model: %s = %g is not supported (want 1)", r.prefix+layout.KeyRopeScalingAttnFactor, attn)
	case typ == "none" || factor == 0 || factor == 1:
		return 0, nil
	case !(factor > 0) || math.IsInf(factor, 0):
		return 0, fmt.Errorf("model: %s = %g, want a positive finite value", r.prefix+factorKey, factor)
	}
	return factor, nil
}

// keyReader reads architecture-prefixed keys and keeps the first error, so that ReadConfig
// reads like the list of keys it needs.
type keyReader struct {
	f      *gguf.File
	prefix string
	err    error
}

// maxCount bounds every size in the configuration, so that products of sizes fit an int
// (and a corrupted value is refused here rather than as an allocation failure later).
const maxCount = 1 << 24

// count reads a positive integer; def > 0 is used when the key is absent, def == 0 makes the
// key required.
func (r *keyReader) count(key string, def int) int {
	if r.err != nil {
		return 0
	}
	key = r.prefix + key
	v, err := r.f.Uint(key)
	switch {
	case errors.Is(err, gguf.ErrNotFound) && def > 0:
		return def
	case errors.Is(err, gguf.ErrNotFound):
		r.err = fmt.Errorf("model: required key %q missing", key)
	case err != nil:
		r.err = fmt.Errorf("model: %w", err)
	case v == 0 || v > maxCount:
		r.err = fmt.Errorf("model: %s = %d, want 1..%d", key, v, maxCount)
	}
	return int(v)
}

// string reads a string that defaults to def.
func (r *keyReader) string(key, def string) string {
	if r.err != nil {
		return ""
	}
	v, err := r.f.String(r.prefix + key)
	switch {
	case errors.Is(err, gguf.ErrNotFound):
		return def
	case err != nil:
		r.err = fmt.Errorf("model: %w", err)
	}
	return v
}

// float reads a number; a NaN def makes the key required.
func (r *keyReader) float(key string, def float64) float64 {
	if r.err != nil {
		return 0
	}
	key = r.prefix + key
	v, err := r.f.Float(key)
	switch {
	case errors.Is(err, gguf.ErrNotFound) && !math.IsNaN(def):
		return def
	case errors.Is(err, gguf.ErrNotFound):
		r.err = fmt.Errorf("model: required key %q missing", key)
	case err != nil:
		r.err = fmt.Errorf("model: %w", err)
	}
	return v
}
