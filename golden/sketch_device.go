package golden

import (
	"fmt"
	"math"
)

// SketchProjections is the number of projections of a Sketch (Sketch.Proj): SketchSigns
// Rademacher projections, then Cauchy ones.
const (
	SketchProjections = sketchWidth
	SketchSigns       = sketchL2
)

// SketchCoefficients returns the projection coefficients for rows of n elements, for a
// device that computes sketches itself. The table is element-major: coef[i*SketchProjections+j]
// multiplies element i in projection j; it is +1 or -1 for j < SketchSigns and a standard
// Cauchy variate after. Every coefficient is exact in float32.
//
// A sketch equal bit for bit to NewSketch(x) comes from SketchFromSums with, for each of the
// SketchProjections+2 sums, one float64 accumulator starting at 0 that adds, for i = 0..n-1
// in order and each rounded before the addition (never a fused multiply-add):
// float64(coef[i*SketchProjections+j]) * float64(x[i]) for projection j,
// float64(x[i]) * float64(x[i]) for sumSq and |float64(x[i])| for sumAbs.
func SketchCoefficients(n int) []float32 {
	if n <= 0 {
		return nil
	}
	t := projection(n)
	c := make([]float32, n*sketchWidth)
	for i := range t.elems {
		e := &t.elems[i]
		row := c[i*sketchWidth : (i+1)*sketchWidth]
		for j := range sketchL2 {
			row[j] = float32(signVec[e.signs[j/8]][j%8])
		}
		copy(row[sketchL2:], e.cauchy[:])
	}
	return c
}

// SketchFromSums returns the sketch of a row of n elements from the sums SketchCoefficients
// describes. It errs on a negative n.
func SketchFromSums(n int, sumSq, sumAbs float64, proj *[SketchProjections]float64) (*Sketch, error) {
	if n < 0 {
		return nil, fmt.Errorf("sketch: negative row length %d", n)
	}
	return &Sketch{Version: SketchVersion, N: n, L2: math.Sqrt(sumSq), L1: sumAbs, Proj: *proj}, nil
}
