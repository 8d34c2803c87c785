//go:build goexperiment.simd && amd64

package ref

import "simd/archsimd"

// AVX2 kernels: two Float32x8 accumulators per output element, for lanes 0-7 and 8-15 of
// the layout. The tiles are written out, one named value per accumulator, so that the
// compiler keeps them in registers.

func load8(s []float32, i int) archsimd.Float32x8 {
	return archsimd.LoadFloat32x8((*[8]float32)(s[i : i+8]))
}

// dot8 is dotPortable for len(a) >= 16.
func dot8(a, b []float32) float32 {
	b = b[:len(a)]
	n := len(a) &^ (lanes - 1)
	var lo, hi archsimd.Float32x8
	for i := 0; i < n; i += lanes {
		lo = lo.Add(load8(a, i).Mul(load8(b, i)))
		hi = hi.Add(load8(a, i+8).Mul(load8(b, i+8)))
	}
	var l [lanes]float32
	lo.Store((*[8]float32)(l[:8]))
	hi.Store((*[8]float32)(l[8:]))
	archsimd.ClearAVXUpperBits()
	addTail(&l, a, b, n)
	return reduce16(&l)
}

// axpy8 is axpyPortable for len(y) >= 8.
func axpy8(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	n := len(y) &^ 7
	va := archsimd.BroadcastFloat32x8(a)
	for i := 0; i < n; i += 8 {
		load8(y, i).Add(va.Mul(load8(x, i))).Store((*[8]float32)(y[i : i+8]))
	}
	archsimd.ClearAVXUpperBits()
	axpyPortable(y[n:], a, x[n:])
}

// matmul8 is matmulPortable for cols >= 16 with register tiles: 2 weight rows x 2 tokens
// (8 Float32x8 accumulators), 2 rows x 1 token for the last tokens, and single dot
// products for the last rows.
func matmul8(w []float32, cols int, x []float32, nt int, y []float32, ys, r0, r1 int) {
	n := cols &^ (lanes - 1)
	r := r0
	for ; r+2 <= r1; r += 2 {
		w0, w1 := w[(r+0)*cols:(r+1)*cols], w[(r+1)*cols:(r+2)*cols]
		t := 0
		for ; t+2 <= nt; t += 2 {
			x0, x1 := x[(t+0)*cols:(t+1)*cols], x[(t+1)*cols:(t+2)*cols]
			tile2x2v8(w0, w1, x0, x1, n, y[t*ys+r:], ys)
		}
		for ; t < nt; t++ {
			tile2x1v8(w0, w1, x[t*cols:(t+1)*cols], n, y[t*ys+r:], ys)
		}
	}
	for ; r < r1; r++ {
		wr := w[r*cols : (r+1)*cols]
		for t := 0; t < nt; t++ {
			y[t*ys+r] = dot(wr, x[t*cols:(t+1)*cols])
		}
	}
}

// tile2x2v8 sets y[t*ys+r] = w_r . x_t for r < 2, t < 2; lanes 0-7 and 8-15 of
// the layout are two Float32x8 accumulators.
func tile2x2v8(w0, w1, x0, x1 []float32, n int, y []float32, ys int) {
	var a00l, a00h, a01l, a01h, a10l, a10h, a11l, a11h archsimd.Float32x8
	for i := 0; i < n; i += lanes {
		v0l, v0h, v1l, v1h := load8(x0, i), load8(x0, i+8), load8(x1, i), load8(x1, i+8)
		u0l, u0h := load8(w0, i), load8(w0, i+8)
		a00l = a00l.Add(u0l.Mul(v0l))
		a00h = a00h.Add(u0h.Mul(v0h))
		a01l = a01l.Add(u0l.Mul(v1l))
		a01h = a01h.Add(u0h.Mul(v1h))
		u1l, u1h := load8(w1, i), load8(w1, i+8)
		a10l = a10l.Add(u1l.Mul(v0l))
		a10h = a10h.Add(u1h.Mul(v0h))
		a11l = a11l.Add(u1l.Mul(v1l))
		a11h = a11h.Add(u1h.Mul(v1h))
	}
	var l [4][lanes]float32
	a00l.Store((*[8]float32)(l[0][:8]))
	a00h.Store((*[8]float32)(l[0][8:]))
	a01l.Store((*[8]float32)(l[2][:8]))
	a01h.Store((*[8]float32)(l[2][8:]))
	a10l.Store((*[8]float32)(l[1][:8]))
	a10h.Store((*[8]float32)(l[1][8:]))
	a11l.Store((*[8]float32)(l[3][:8]))
	a11h.Store((*[8]float32)(l[3][8:]))
	archsimd.ClearAVXUpperBits()
	finishTile(l[:], [][]float32{w0, w1}, [][]float32{x0, x1}, n, y, ys)
}

// tile2x1v8 sets y[t*ys+r] = w_r . x_t for r < 2, t < 1; lanes 0-7 and 8-15 of
// the layout are two Float32x8 accumulators.
func tile2x1v8(w0, w1, x0 []float32, n int, y []float32, ys int) {
	var a00l, a00h, a10l, a10h archsimd.Float32x8
	for i := 0; i < n; i += lanes {
		v0l, v0h := load8(x0, i), load8(x0, i+8)
		u0l, u0h := load8(w0, i), load8(w0, i+8)
		a00l = a00l.Add(u0l.Mul(v0l))
		a00h = a00h.Add(u0h.Mul(v0h))
		u1l, u1h := load8(w1, i), load8(w1, i+8)
		a10l = a10l.Add(u1l.Mul(v0l))
		a10h = a10h.Add(u1h.Mul(v0h))
	}
	var l [2][lanes]float32
	a00l.Store((*[8]float32)(l[0][:8]))
	a00h.Store((*[8]float32)(l[0][8:]))
	a10l.Store((*[8]float32)(l[1][:8]))
	a10h.Store((*[8]float32)(l[1][8:]))
	archsimd.ClearAVXUpperBits()
	finishTile(l[:], [][]float32{w0, w1}, [][]float32{x0}, n, y, ys)
}
