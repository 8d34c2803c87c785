package model

import (
	"fmt"
	"math"
	"strings"

	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/model/layout"
)

// Check refuses a model's configuration no engine can run and any weight whose shape is not the one
// the configuration implies, naming the tensor: the architecture's RoPE style and biases,
// rope_freqs.weight (rope_dim/2 positive finite factors) and the biases when the
// configuration has them, and no such tensors when it has not. Load and Open bind only such
// models; Check guards the models built by hand (tests, generators) before an engine sizes
// buffers from the configuration. Every engine of this module calls it first.
func Check(m *engine.Model) error {
	if m == nil || m.Weights == nil {
		return fmt.Errorf("model: no weights")
	}
	c, w := m.Config, m.Weights
	arch, ok := layout.ArchNamed(c.Arch)
	switch {
	case !ok:
		return fmt.Errorf("model: architecture %q is not supported (supported: %s)", c.Arch, strings.Join(layout.ArchNames(), ", "))
	case c.RopeStyle != arch.Rope || c.QKVBias != arch.QKVBias || c.RopeFreqs && !arch.RopeFreqs:
		return fmt.Errorf("model: config of %s with rope style %s, q/k/v biases %v, rope_freqs %v; %s wants rope style %s, biases %v",
			c.Arch, c.RopeStyle, c.QKVBias, c.RopeFreqs, arch.Name, arch.Rope, arch.QKVBias)
	case c.RopeScale < 0 || math.IsNaN(c.RopeScale) || math.IsInf(c.RopeScale, 0):
		return fmt.Errorf("model: rope scaling factor %v must be positive and finite (0 for none)", c.RopeScale)
	case c.NLayer <= 0 || c.Dim <= 0 || c.FFNDim <= 0 || c.NHead <= 0 || c.NHeadKV <= 0 || c.HeadDim <= 0 ||
		c.Vocab <= 0 || c.CtxLen <= 0:
		return fmt.Errorf("model: config %+v: every dimension must be positive", c)
	case c.NHead%c.NHeadKV != 0:
		return fmt.Errorf("model: head_count %d is not a multiple of head_count_kv %d", c.NHead, c.NHeadKV)
	case c.HeadDim*c.NHead != c.Dim:
		return fmt.Errorf("model: head_dim %d x head_count %d != embedding_length %d", c.HeadDim, c.NHead, c.Dim)
	case c.RopeDim <= 0 || c.RopeDim%2 != 0 || c.RopeDim > c.HeadDim:
		return fmt.Errorf("model: rope dimension %d must be even and in 2..head_dim %d", c.RopeDim, c.HeadDim)
	case !(c.RopeBase > 0) || math.IsInf(c.RopeBase, 0):
		return fmt.Errorf("model: rope freq_base %v must be positive and finite", c.RopeBase)
	case len(w.Layers) != c.NLayer:
		return fmt.Errorf("model: %d layers of weights, block_count %d", len(w.Layers), c.NLayer)
	}
	shape := func(mat *Matrix, name string, rows, cols int) error {
		if mat.Rows == rows && mat.Cols == cols && len(mat.Data) == rows*cols {
			return nil
		}
		if mat.Name != "" {
			name = mat.Name
		}
		return fmt.Errorf("model: tensor %q: %dx%d with %d values, the config wants %dx%d",
			name, mat.Rows, mat.Cols, len(mat.Data), rows, cols)
	}
	for _, s := range tensorsOf(c) {
		if v := vectorOf(w, s); v != nil {
			if len(*v) != int(s.Shape[0]) {
				return fmt.Errorf("model: tensor %q: %d values, the config wants %d", s.Name, len(*v), s.Shape[0])
			}
		} else if err := shape(matrixOf(w, s), s.Name, int(s.Shape[1]), int(s.Shape[0])); err != nil {
			return err
		}
	}
	if c.TiedOutput { // not in the file's tensors, but the logits read it all the same
		if err := shape(&w.Output, "output.weight", c.Vocab, c.Dim); err != nil {
			return err
		}
	}
	// An engine reads these by the configuration's flags: data it would ignore is an error.
	if !c.RopeFreqs && w.RopeFreqs != nil {
		return fmt.Errorf("model: tensor %q present but the config has no RoPE frequency factors", layout.RopeFreqs.String())
	}
	for l, L := range w.Layers {
		if !c.QKVBias && (L.Bq != nil || L.Bk != nil || L.Bv != nil) {
			return fmt.Errorf("model: layer %d has q/k/v biases but the config has none", l)
		}
	}
	for i, f := range w.RopeFreqs {
		if !(f > 0) || math.IsInf(float64(f), 0) {
			return fmt.Errorf("model: tensor %q: factor %d is %v, want a positive finite value", layout.RopeFreqs.String(), i, f)
		}
	}
	return nil
}
