package ref

import "github.com/gretabisect/gretabisect/gretatest/engine"

// F64AccName is the registry name, and the device, of the float64-accumulating candidate.
const F64AccName = "cpu-f64acc"

// NewF64Acc builds a CPU candidate that is correct but numerically different from the
// reference: the same forward pass, whose dot products (every projection, RMSNorm's sum of
// squares, the attention scores) accumulate in float64 and round once. It stands in for
// another device in tests that need one without a GPU (calibration, replay, own error):
// its rows differ from the reference's by float32 rounding, as a GPU's do. It is as
// deterministic as the reference: the same bits on every run, machine and thread count.
func NewF64Acc(m *engine.Model) (*Engine, error) { return newEngine(m, f64Kernels, F64AccName) }

var f64Kernels = kernels{dot: dot64, matmul: matmul64}

// dot64 is a (n) . b (n) summed in float64 in four lanes (element i into lane i%4, in
// increasing i), folded (0+1)+(2+3) and rounded to float32. A product of two float32
// values is exact in float64, so fusing it with the add would change nothing; it is
// written unfused all the same.
func dot64(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float64(float64(a[i]) * float64(b[i]))
		s1 += float64(float64(a[i+1]) * float64(b[i+1]))
		s2 += float64(float64(a[i+2]) * float64(b[i+2]))
		s3 += float64(float64(a[i+3]) * float64(b[i+3]))
	}
	for j := 0; i < len(a); i, j = i+1, j+1 {
		p := float64(float64(a[i]) * float64(b[i]))
		switch j {
		case 0:
			s0 += p
		case 1:
			s1 += p
		default:
			s2 += p
		}
	}
	return float32((s0 + s1) + (s2 + s3))
}

// matmul64 is matmulPortable with dot64.
func matmul64(w []float32, cols int, x []float32, nt int, y []float32, ys, r0, r1 int) {
	for r := r0; r < r1; r++ {
		wr := w[r*cols : (r+1)*cols]
		for t := 0; t < nt; t++ {
			y[t*ys+r] = dot64(wr, x[t*cols:(t+1)*cols])
		}
	}
}
