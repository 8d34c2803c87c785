//go:build goexperiment.simd && amd64

package ref

import "simd/archsimd"

// Kernel is the name of the inner-loop implementation in use.
var Kernel = func() string {
	if hasAVX512 {
		return "avx512"
	}
	return "portable"
}()

var hasAVX512 = archsimd.X86.AVX512()

// The SIMD kernels keep one Float32x16 accumulator per output element: its lane j is the
// portable layout's lane j, and Mul then Add round exactly like float32(a*b) then +. After
// the loop the lanes are stored and finished by the shared scalar code.

type vec = archsimd.Float32x16

func load(s []float32, i int) vec { return archsimd.LoadFloat32x16((*[lanes]float32)(s[i : i+lanes])) }

// finish stores acc, clears the upper AVX state before the scalar code, adds the tail of
// a . b from n on and folds the lanes.
func finish(acc vec, a, b []float32, n int) float32 {
	var l [lanes]float32
	acc.Store(&l)
	archsimd.ClearAVXUpperBits()
	addTail(&l, a, b, n)
	return reduce16(&l)
}

func dot(a, b []float32) float32 {
	if !hasAVX512 || len(a) < lanes {
		return dotPortable(a, b)
	}
	b = b[:len(a)]
	n := len(a) &^ (lanes - 1)
	var acc vec
	for i := 0; i < n; i += lanes {
		acc = acc.Add(load(a, i).Mul(load(b, i)))
	}
	return finish(acc, a, b, n)
}

// axpy is axpyPortable: Mul then Add per element, as the scalar code rounds.
func axpy(y []float32, a float32, x []float32) {
	if !hasAVX512 || len(y) < lanes {
		axpyPortable(y, a, x)
		return
	}
	x = x[:len(y)]
	n := len(y) &^ (lanes - 1)
	va := archsimd.BroadcastFloat32x16(a)
	for i := 0; i < n; i += lanes {
		load(y, i).Add(va.Mul(load(x, i))).Store((*[lanes]float32)(y[i : i+lanes]))
	}
	archsimd.ClearAVXUpperBits()
	axpyPortable(y[n:], a, x[n:])
}

// matmul is matmulPortable with register tiles: 4 weight rows x 3 tokens (12
// accumulators, each loaded weight used 3 times and each activation 4 times, within the
// 16 vector registers the compiler allocates), 4 rows x 1 token for the last tokens
// (decode), and single dot products for the last rows.
func matmul(w []float32, cols int, x []float32, nt int, y []float32, ys, r0, r1 int) {
	if !hasAVX512 || cols < lanes {
		matmulPortable(w, cols, x, nt, y, ys, r0, r1)
		return
	}
	n := cols &^ (lanes - 1)
	r := r0
	for ; r+4 <= r1; r += 4 {
		w0, w1, w2, w3 := w[(r+0)*cols:(r+1)*cols], w[(r+1)*cols:(r+2)*cols], w[(r+2)*cols:(r+3)*cols], w[(r+3)*cols:(r+4)*cols]
		t := 0
		for ; t+3 <= nt; t += 3 {
			x0, x1, x2 := x[(t+0)*cols:(t+1)*cols], x[(t+1)*cols:(t+2)*cols], x[(t+2)*cols:(t+3)*cols]
			tile4x3(w0, w1, w2, w3, x0, x1, x2, n, y[t*ys+r:], ys)
		}
		for ; t < nt; t++ {
			tile4x1(w0, w1, w2, w3, x[t*cols:(t+1)*cols], n, y[t*ys+r:], ys)
		}
	}
	for ; r < r1; r++ {
		wr := w[r*cols : (r+1)*cols]
		for t := 0; t < nt; t++ {
			y[t*ys+r] = dot(wr, x[t*cols:(t+1)*cols])
		}
	}
}

// tile4x3 sets y[t*ys+r] = w_r . x_t for r < 4, t < 3.
func tile4x3(w0, w1, w2, w3, x0, x1, x2 []float32, n int, y []float32, ys int) {
	var a00, a01, a02, a10, a11, a12, a20, a21, a22, a30, a31, a32 vec
	for i := 0; i < n; i += lanes {
		v0, v1, v2 := load(x0, i), load(x1, i), load(x2, i)
		u0 := load(w0, i)
		a00 = a00.Add(u0.Mul(v0))
		a01 = a01.Add(u0.Mul(v1))
		a02 = a02.Add(u0.Mul(v2))
		u1 := load(w1, i)
		a10 = a10.Add(u1.Mul(v0))
		a11 = a11.Add(u1.Mul(v1))
		a12 = a12.Add(u1.Mul(v2))
		u2 := load(w2, i)
		a20 = a20.Add(u2.Mul(v0))
		a21 = a21.Add(u2.Mul(v1))
		a22 = a22.Add(u2.Mul(v2))
		u3 := load(w3, i)
		a30 = a30.Add(u3.Mul(v0))
		a31 = a31.Add(u3.Mul(v1))
		a32 = a32.Add(u3.Mul(v2))
	}
	var l [12][lanes]float32
	a00.Store(&l[0])
	a01.Store(&l[4])
	a02.Store(&l[8])
	a10.Store(&l[1])
	a11.Store(&l[5])
	a12.Store(&l[9])
	a20.Store(&l[2])
	a21.Store(&l[6])
	a22.Store(&l[10])
	a30.Store(&l[3])
	a31.Store(&l[7])
	a32.Store(&l[11])
	archsimd.ClearAVXUpperBits()
	ws, xs := [4][]float32{w0, w1, w2, w3}, [3][]float32{x0, x1, x2}
	for t := range 3 {
		for r := range 4 {
			addTail(&l[t*4+r], ws[r], xs[t], n)
			y[t*ys+r] = reduce16(&l[t*4+r])
		}
	}
}

// tile4x1 sets y[t*ys+r] = w_r . x_t for r < 4, t < 1.
func tile4x1(w0, w1, w2, w3, x0 []float32, n int, y []float32, ys int) {
	var a00, a10, a20, a30 vec
	for i := 0; i < n; i += lanes {
		v0 := load(x0, i)
		u0 := load(w0, i)
		a00 = a00.Add(u0.Mul(v0))
		u1 := load(w1, i)
		a10 = a10.Add(u1.Mul(v0))
		u2 := load(w2, i)
		a20 = a20.Add(u2.Mul(v0))
		u3 := load(w3, i)
		a30 = a30.Add(u3.Mul(v0))
	}
	var l [4][lanes]float32
	a00.Store(&l[0])
	a10.Store(&l[1])
	a20.Store(&l[2])
	a30.Store(&l[3])
	archsimd.ClearAVXUpperBits()
	ws, xs := [4][]float32{w0, w1, w2, w3}, [1][]float32{x0}
	for t := range 1 {
		for r := range 4 {
			addTail(&l[t*4+r], ws[r], xs[t], n)
			y[t*ys+r] = reduce16(&l[t*4+r])
		}
	}
}
