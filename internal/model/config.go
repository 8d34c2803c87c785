package model

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/model/layout"
)

// Architectures this package can bind. Any other general.architecture is refused by name.
var supportedArchs = []string{"llama"}

// Defaults of the optional keys, as llama.cpp applies them.
const defaultRopeBase = 10000

// ReadConfig reads a Llama configuration from f's metadata and checks it. Every key is
// prefixed by general.architecture ("llama.block_count"). Required: block_count,
// embedding_length, feed_forward_length, attention.head_count,
// attention.layer_norm_rms_epsilon, context_length. Optional: attention.head_count_kv
// (default head_count), rope.dimension_count (default the head dimension), rope.freq_base
// (default 10000). Vocab and TiedOutput come from the tensors and are left zero here.
//
// It refuses a missing or mistyped key, a zero or negative value, head_count not dividing
// embedding_length, head_count_kv not dividing head_count, an odd or oversized rope
// dimension, and an architecture other than llama.
func ReadConfig(f *gguf.File) (Config, error) {
	var c Config
	arch, err := f.String("general.architecture")
	if err != nil {
		return c, fmt.Errorf("model: %w", err)
	}
	if !slices.Contains(supportedArchs, arch) {
		return c, fmt.Errorf("model: general.architecture %q is not supported (want one of %q)", arch, supportedArchs)
	}
	c.Arch = arch
	r := keyReader{f: f, prefix: arch + "."}
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
	if r.err != nil {
		return c, r.err
	}
	if c.RopeDim%2 != 0 || c.RopeDim > c.HeadDim {
		return c, fmt.Errorf("model: %s = %d, want an even number no larger than the head dimension %d", r.prefix+layout.KeyRopeDimCount, c.RopeDim, c.HeadDim)
	}
	return c, nil
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
