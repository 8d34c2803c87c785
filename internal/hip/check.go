package hip

import (
	"fmt"
	"math"

	"github.com/gretabisect/gretabisect/internal/model"
)

// checkModel refuses what model.Check refuses, and a configuration beyond the kernels'
// 32-bit indexing, before anything touches a device.
func checkModel(m *model.Model) error {
	if err := m.Check(); err != nil {
		return fmt.Errorf("hip: %w", err)
	}
	c := m.Config
	for _, v := range []int{c.Vocab * c.Dim, c.CtxLen * c.FFNDim, c.CtxLen * c.NHead * c.HeadDim} {
		if v > math.MaxInt32 {
			return fmt.Errorf("hip: config %+v: a tensor of %d elements is beyond 32-bit indexing", c, v)
		}
	}
	return nil
}
