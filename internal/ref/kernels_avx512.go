//go:build goexperiment.simd && amd64

package ref

import "simd/archsimd"

// AVX-512 kernels: one Float32x16 accumulator per output element, its lane j the layout's
// lane j. The tiles are written out, one named value per accumulator, so that the compiler
// keeps them in registers.

func load16(s []float32, i int) archsimd.Float32x16 {
	return archsimd.LoadFloat32x16((*[lanes]float32)(s[i : i+lanes]))
}

// dot16 is dotPortable for len(a) >= 16.
func dot16(a, b []float32) float32 {
	b = b[:len(a)]
	n := len(a) &^ (lanes - 1)
	var acc archsimd.Float32x16
	for i := 0; i < n; i += lanes {
		acc = acc.Add(load16(a, i).Mul(load16(b, i)))
	}
	var l [lanes]float32
	acc.Store(&l)
	archsimd.ClearAVXUpperBits()
	addTail(&l, a, b, n)
	return reduce16(&l)
}

// axpy16 is axpyPortable for len(y) >= 16.
func axpy16(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	n := len(y) &^ (lanes - 1)
	va := archsimd.BroadcastFloat32x16(a)
	for i := 0; i < n; i += lanes {
		load16(y, i).Add(va.Mul(load16(x, i))).Store((*[lanes]float32)(y[i : i+lanes]))
	}
	archsimd.ClearAVXUpperBits()
	axpyPortable(y[n:], a, x[n:])
}

// matmul16 is matmulPortable for cols >= 16 with register tiles: 4 weight rows x 3 tokens
// (12 accumulators, each loaded weight used 3 times and each activation 4 times, within
// the 16 vector registers the compiler allocates), 4 rows x 1 token for the last tokens
// (decode), and single dot products for the last rows.
func matmul16(w []float32, cols int, x []float32, nt int, y []float32, ys, r0, r1 int) {
	n := cols &^ (lanes - 1)
	r := r0
	for ; r+4 <= r1; r += 4 {
		w0, w1, w2, w3 := w[(r+0)*cols:(r+1)*cols], w[(r+1)*cols:(r+2)*cols], w[(r+2)*cols:(r+3)*cols], w[(r+3)*cols:(r+4)*cols]
		t := 0
		for ; t+3 <= nt; t += 3 {
			x0, x1, x2 := x[(t+0)*cols:(t+1)*cols], x[(t+1)*cols:(t+2)*cols], x[(t+2)*cols:(t+3)*cols]
			tile4x3v16(w0, w1, w2, w3, x0, x1, x2, n, y[t*ys+r:], ys)
		}
		for ; t < nt; t++ {
			tile4x1v16(w0, w1, w2, w3, x[t*cols:(t+1)*cols], n, y[t*ys+r:], ys)
		}
	}
	for ; r < r1; r++ {
		wr := w[r*cols : (r+1)*cols]
		for t := 0; t < nt; t++ {
			y[t*ys+r] = dot(wr, x[t*cols:(t+1)*cols])
		}
	}
}

// tile4x3v16 sets y[t*ys+r] = w_r . x_t for r < 4, t < 3.
func tile4x3v16(w0, w1, w2, w3, x0, x1, x2 []float32, n int, y []float32, ys int) {
	var a00, a01, a02, a10, a11, a12, a20, a21, a22, a30, a31, a32 archsimd.Float32x16
	for i := 0; i < n; i += lanes {
		v0, v1, v2 := load16(x0, i), load16(x1, i), load16(x2, i)
		u0 := load16(w0, i)
		a00 = a00.Add(u0.Mul(v0))
		a01 = a01.Add(u0.Mul(v1))
		a02 = a02.Add(u0.Mul(v2))
		u1 := load16(w1, i)
		a10 = a10.Add(u1.Mul(v0))
		a11 = a11.Add(u1.Mul(v1))
		a12 = a12.Add(u1.Mul(v2))
		u2 := load16(w2, i)
		a20 = a20.Add(u2.Mul(v0))
		a21 = a21.Add(u2.Mul(v1))
		a22 = a22.Add(u2.Mul(v2))
		u3 := load16(w3, i)
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
	finishTile(l[:], [][]float32{w0, w1, w2, w3}, [][]float32{x0, x1, x2}, n, y, ys)
}

// tile4x1v16 sets y[t*ys+r] = w_r . x_t for r < 4, t < 1.
func tile4x1v16(w0, w1, w2, w3, x0 []float32, n int, y []float32, ys int) {
	var a00, a10, a20, a30 archsimd.Float32x16
	for i := 0; i < n; i += lanes {
		v0 := load16(x0, i)
		u0 := load16(w0, i)
		a00 = a00.Add(u0.Mul(v0))
		u1 := load16(w1, i)
		a10 = a10.Add(u1.Mul(v0))
		u2 := load16(w2, i)
		a20 = a20.Add(u2.Mul(v0))
		u3 := load16(w3, i)
		a30 = a30.Add(u3.Mul(v0))
	}
	var l [4][lanes]float32
	a00.Store(&l[0])
	a10.Store(&l[1])
	a20.Store(&l[2])
	a30.Store(&l[3])
	archsimd.ClearAVXUpperBits()
	finishTile(l[:], [][]float32{w0, w1, w2, w3}, [][]float32{x0}, n, y, ys)
}
