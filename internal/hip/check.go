package hip

import (
	"fmt"
	"math"

	"github.com/gretabisect/gretabisect/internal/model"
)

// checkModel refuses a configuration the kernels cannot run and any weight whose shape is
// not the one the configuration implies, naming the tensor, before anything touches a
// device. (internal/model refuses such files at load; this guards hand-built models.)
func checkModel(m *model.Model) error {
	if m == nil || m.Weights == nil {
		return fmt.Errorf("hip: model has no weights")
	}
	c, w := m.Config, m.Weights
	switch {
	case c.NLayer <= 0 || c.Dim <= 0 || c.FFNDim <= 0 || c.NHead <= 0 || c.NHeadKV <= 0 || c.HeadDim <= 0 ||
		c.Vocab <= 0 || c.CtxLen <= 0:
		return fmt.Errorf("hip: config %+v: every dimension must be positive", c)
	case c.NHead%c.NHeadKV != 0:
		return fmt.Errorf("hip: head_count %d is not a multiple of head_count_kv %d", c.NHead, c.NHeadKV)
	case c.RopeDim <= 0 || c.RopeDim%2 != 0 || c.RopeDim > c.HeadDim:
		return fmt.Errorf("hip: rope dimension %d must be even and in 2..head_dim %d", c.RopeDim, c.HeadDim)
	case !(c.RopeBase > 0) || math.IsInf(c.RopeBase, 0):
		return fmt.Errorf("hip: rope freq_base %v must be positive and finite", c.RopeBase)
	case len(w.Layers) != c.NLayer:
		return fmt.Errorf("hip: %d layers of weights, block_count %d", len(w.Layers), c.NLayer)
	}
	// The kernels index with 32-bit row and column counts.
	for _, v := range []int{c.Vocab * c.Dim, c.CtxLen * c.FFNDim, c.CtxLen * c.NHead * c.HeadDim} {
		if v > math.MaxInt32 {
			return fmt.Errorf("hip: config %+v: a tensor of %d elements is beyond 32-bit indexing", c, v)
		}
	}
	q, kv := c.NHead*c.HeadDim, c.NHeadKV*c.HeadDim
	type want struct {
		m          *model.Matrix
		rows, cols int
	}
	mats := []want{{&w.TokEmbd, c.Vocab, c.Dim}, {&w.Output, c.Vocab, c.Dim}}
	type vec struct {
		name string
		v    []float32
	}
	vecs := []vec{{"output_norm.weight", w.OutNorm}}
	for l := range w.Layers {
		L := &w.Layers[l]
		mats = append(mats, want{&L.Wq, q, c.Dim}, want{&L.Wk, kv, c.Dim}, want{&L.Wv, kv, c.Dim}, want{&L.Wo, c.Dim, q},
			want{&L.WGate, c.FFNDim, c.Dim}, want{&L.WUp, c.FFNDim, c.Dim}, want{&L.WDown, c.Dim, c.FFNDim})
		vecs = append(vecs, vec{fmt.Sprintf("blk.%d.attn_norm.weight", l), L.AttnNorm},
			vec{fmt.Sprintf("blk.%d.ffn_norm.weight", l), L.FFNNorm})
	}
	for _, s := range mats {
		if s.m.Rows != s.rows || s.m.Cols != s.cols || len(s.m.Data) != s.rows*s.cols {
			return fmt.Errorf("hip: tensor %q: %dx%d with %d values, the config wants %dx%d",
				s.m.Name, s.m.Rows, s.m.Cols, len(s.m.Data), s.rows, s.cols)
		}
	}
	for _, s := range vecs {
		if len(s.v) != c.Dim {
			return fmt.Errorf("hip: tensor %q: %d values, the config wants %d", s.name, len(s.v), c.Dim)
		}
	}
	return nil
}
