//go:build amd64 && !goexperiment.simd && !purego

package ref

// Builds without the SIMD experiment use SSE assembly (kernels_sse_amd64.s) on amd64: the
// same lane layout in four 4-wide registers, the portable code's bits. useSSE is false only
// in tests that check the Go code.
var useSSE = true

// Kernel names the inner-loop implementation in use.
func Kernel() string {
	if useSSE {
		return "sse"
	}
	return "portable"
}

//go:noescape
func dotSSE(a, b []float32, acc *[lanes]float32)

//go:noescape
func dot2SSE(w, x0, x1 []float32, acc0, acc1 *[lanes]float32)

func dot(a, b []float32) float32 {
	if !useSSE {
		return dotPortable(a, b)
	}
	b = b[:len(a)]
	var acc [lanes]float32
	dotSSE(a, b, &acc)
	addTail(&acc, a, b, len(a)&^(lanes-1))
	return reduce16(&acc)
}

//go:noescape
func axpySSE(y, x []float32, a float32)

func axpy(y []float32, a float32, x []float32) {
	if !useSSE {
		axpyPortable(y, a, x)
		return
	}
	x = x[:len(y)]
	axpySSE(y, x, a)
	n := len(y) &^ 3
	axpyPortable(y[n:], a, x[n:])
}

// matmul is matmulPortable, two tokens at a time so each weight is loaded once for both.
func matmul(w []float32, cols int, x []float32, nt int, y []float32, ys, r0, r1 int) {
	if !useSSE {
		matmulPortable(w, cols, x, nt, y, ys, r0, r1)
		return
	}
	n := cols &^ (lanes - 1)
	for r := r0; r < r1; r++ {
		wr := w[r*cols : (r+1)*cols]
		t := 0
		for ; t+2 <= nt; t += 2 {
			x0, x1 := x[t*cols:(t+1)*cols], x[(t+1)*cols:(t+2)*cols]
			var l0, l1 [lanes]float32
			dot2SSE(wr, x0, x1, &l0, &l1)
			addTail(&l0, wr, x0, n)
			addTail(&l1, wr, x1, n)
			y[t*ys+r], y[(t+1)*ys+r] = reduce16(&l0), reduce16(&l1)
		}
		if t < nt {
			y[t*ys+r] = dot(wr, x[t*cols:(t+1)*cols])
		}
	}
}
