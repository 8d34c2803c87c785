package hip

import (
	"fmt"
	"math"

	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/model/layout"
)

// checkModel refuses what model.Check refuses, a model the kernels do not implement yet
// (NEOX RoPE, RoPE frequency factors or scaling, q/k/v biases), and a configuration beyond
// the kernels' 32-bit indexing, before anything touches a device.
func checkModel(m *engine.Model) error {
	if err := model.Check(m); err != nil {
		return fmt.Errorf("hip: %w", err)
	}
	c := m.Config
	if c.RopeStyle != layout.RopeNorm || c.RopeFreqs || c.RopeScale != 0 || c.QKVBias {
		return fmt.Errorf("hip: %s model with rope style %s, rope_freqs %v, rope scaling %g, q/k/v biases %v: not implemented by the kernels yet (the cpu backend runs it)",
			c.Arch, c.RopeStyle, c.RopeFreqs, c.RopeScale, c.QKVBias)
	}
	for _, v := range []int{c.Vocab * c.Dim, c.CtxLen * c.FFNDim, c.CtxLen * c.NHead * c.HeadDim} {
		if v > math.MaxInt32 {
			return fmt.Errorf("hip: config %+v: a tensor of %d elements is beyond 32-bit indexing", c, v)
		}
	}
	return nil
}
