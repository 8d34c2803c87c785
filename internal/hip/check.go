package hip

import (
	"fmt"
	"math"

	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/model/layout"
	"github.com/gretabisect/gretabisect/internal/ref"
)

// checkModel refuses what model.Check refuses, a RoPE style the kernels do not implement
// (they turn adjacent pairs and NEOX halves), and a configuration beyond the kernels' 32-bit
// indexing, before anything touches a device.
func checkModel(m *engine.Model) error {
	if err := model.Check(m); err != nil {
		return fmt.Errorf("hip: %w", err)
	}
	c := m.Config
	if c.RopeStyle != layout.RopeNorm && c.RopeStyle != layout.RopeNeox {
		return fmt.Errorf("hip: %s model with rope style %s: not implemented by the kernels (the cpu backend runs it)",
			c.Arch, c.RopeStyle)
	}
	return checkIndexing(c)
}

// checkIndexing refuses a configuration with a tensor of more elements than an int32
// counts: the token embedding (also the output projection when tied: Llama 3.2 1B's
// 128256 x 2048, Qwen2.5 0.5B's 151936 x 896), and a whole context of FFN or query rows.
// The kernels take row counts and widths as int and form every offset in 64 bits; this
// keeps each tensor's element count an int too.
func checkIndexing(c model.Config) error {
	for _, v := range []struct {
		what string
		n    int
	}{
		{"token_embd", c.Vocab * c.Dim},
		{"the FFN rows of the context", c.CtxLen * c.FFNDim},
		{"the query rows of the context", c.CtxLen * c.NHead * c.HeadDim},
	} {
		if v.n > math.MaxInt32 {
			return fmt.Errorf("hip: %s holds %d elements, beyond 32-bit indexing (config %+v)", v.what, v.n, c)
		}
	}
	return nil
}

// ropeFreqs returns the frequency table the rope kernel takes from the host: the CPU
// reference's (ref.RopeFreq) when the model has frequency factors or linear scaling, and
// nil otherwise, when the kernel computes base^(-2i/rope_dim) itself as it always has, so
// the bits of such models (and their committed device goldens) do not change.
func ropeFreqs(m *engine.Model) []float64 {
	c := m.Config
	if !c.RopeFreqs && c.RopeScale == 0 {
		return nil
	}
	return ref.RopeFreq(c, m.Weights.RopeFreqs)
}
