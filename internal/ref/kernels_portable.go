//go:build !(goexperiment.simd && amd64) && (!amd64 || purego)

package ref

// Kernel names the inner-loop implementation in use.
func Kernel() string { return "portable" }

func dot(a, b []float32) float32 { return dotPortable(a, b) }

func matmul(w []float32, cols int, x []float32, nt int, y []float32, ys, r0, r1 int) {
	matmulPortable(w, cols, x, nt, y, ys, r0, r1)
}

func axpy(y []float32, a float32, x []float32) { axpyPortable(y, a, x) }
