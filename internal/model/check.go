package model

import (
	"fmt"
	"math"
)

// Check refuses a configuration no engine can run and any weight whose shape is not the one
// the configuration implies, naming the tensor. Load and Open bind only such models; Check
// guards the models built by hand (tests, generators) before an engine sizes buffers from
// the configuration.
func (m *Model) Check() error {
	if m == nil || m.Weights == nil {
		return fmt.Errorf("model: no weights")
	}
	c, w := m.Config, m.Weights
	switch {
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
		if v := w.vector(s); v != nil {
			if len(*v) != int(s.Shape[0]) {
				return fmt.Errorf("model: tensor %q: %d values, the config wants %d", s.Name, len(*v), s.Shape[0])
			}
		} else if err := shape(w.matrix(s), s.Name, int(s.Shape[1]), int(s.Shape[0])); err != nil {
			return err
		}
	}
	if c.TiedOutput { // not in the file's tensors, but the logits read it all the same
		return shape(&w.Output, "output.weight", c.Vocab, c.Dim)
	}
	return nil
}
