//go:build goexperiment.simd && amd64

package golden

import (
	"math"
	"simd/archsimd"
	"sync"
)

// kernels are the implementations of accumulate this machine runs, best first.
var kernels = func() (k []kernel) {
	if archsimd.X86.AVX512() {
		k = append(k, kernel{"avx512", accumulateAVX512})
	}
	if archsimd.X86.AVX2() {
		k = append(k, kernel{"avx2", accumulateAVX2})
	}
	return append(k, kernel{"portable", accumulatePortable})
}()

// accumulate adds row's terms to sum with the best kernel.
var accumulate = kernels[0].f

// The SIMD kernels are accumulatePortable with the sums in vector lanes: Mul then Add round
// exactly like its product then sum, element after element. A pass over the row keeps at
// most six accumulators and their six products, within the sixteen vector registers the
// compiler allocates (the products are computed before the sums), and at least four, so
// that the sums' latency does not bound a pass.

func accumulateAVX512(sum *sums, row []float32, t *projTable) {
	w := widen(row)
	passA512(sum, w.x, t)
	passB512(sum, w, t)
	archsimd.ClearAVXUpperBits()
	widened.Put(w)
}

func accumulateAVX2(sum *sums, row []float32, t *projTable) {
	w := widen(row)
	passA256(sum, w.x, t, 0)
	passA256(sum, w.x, t, 1)
	passB256(sum, w.x, t, 16)
	passB256(sum, w.x, t, 40)
	norms(sum, w)
	archsimd.ClearAVXUpperBits()
	widened.Put(w)
}

// wideRow is a row prepared for the vector loops by scalar code that runs before them:
// converting each element inside the loops would put legacy SSE instructions among the AVX
// ones, a state transition per element that made them several times slower.
type wideRow struct {
	x     []float64 // x[i] = float64(row[i]), then one more (the loops load pairs)
	sqAbs []float64 // x[i]*x[i] and |x[i]| at 2i and 2i+1, the terms of the norms' sums
	buf   []float64 // backing x and sqAbs, kept by the pool
}

var widened = sync.Pool{New: func() any { return new(wideRow) }}

func widen(row []float32) *wideRow {
	w := widened.Get().(*wideRow)
	n := len(row)
	if cap(w.buf) < 3*n+1 {
		w.buf = make([]float64, 3*n+1)
	}
	w.x, w.sqAbs = w.buf[:n+1], w.buf[n+1:3*n+1]
	for i, v := range row {
		x := float64(v)
		w.x[i] = x
		w.sqAbs[2*i] = float64(x * x)
		w.sqAbs[2*i+1] = math.Abs(x)
	}
	return w
}

type (
	f64x8 = archsimd.Float64x8
	f64x4 = archsimd.Float64x4
)

func ld8(p []float64) f64x8 { return archsimd.LoadFloat64x8((*[8]float64)(p)) }
func ld4(p []float64) f64x4 { return archsimd.LoadFloat64x4((*[4]float64)(p)) }
func cvt8(p []float32) f64x8 {
	return archsimd.LoadFloat32x8((*[8]float32)(p)).ConvertToFloat64()
}
func cvt4(p []float32) f64x4 {
	return archsimd.LoadFloat32x4((*[4]float32)(p)).ConvertToFloat64()
}
func st8(a f64x8, p []float64) { a.Store((*[8]float64)(p)) }
func st4(a f64x4, p []float64) { a.Store((*[4]float64)(p)) }

// passA512 adds the sketchL2 Rademacher projections (lane k of a0..a3 is projection 8g+k)
// and Cauchy projections sketchL2 .. sketchL2+15.
func passA512(sum *sums, x []float64, t *projTable) {
	p := &sum.proj
	a0, a1, a2, a3, a4, a5 := ld8(p[0:]), ld8(p[8:]), ld8(p[16:]), ld8(p[24:]), ld8(p[32:]), ld8(p[40:])
	n := len(x) - 1
	signs, cauchy := t.signs[:n*sketchL2/8], t.cauchy[:n*sketchL1]
	for i := range n {
		xi := archsimd.LoadFloat64x2((*[2]float64)(x[i:])).Broadcast1To8()
		s := (*[sketchL2 / 8]uint8)(signs[i*sketchL2/8:])
		c := (*[16]float32)(cauchy[i*sketchL1:])
		a0 = a0.Add(ld8(signVec[s[0]][:]).Mul(xi))
		a1 = a1.Add(ld8(signVec[s[1]][:]).Mul(xi))
		a2 = a2.Add(ld8(signVec[s[2]][:]).Mul(xi))
		a3 = a3.Add(ld8(signVec[s[3]][:]).Mul(xi))
		a4 = a4.Add(cvt8(c[0:]).Mul(xi))
		a5 = a5.Add(cvt8(c[8:]).Mul(xi))
	}
	st8(a0, p[0:])
	st8(a1, p[8:])
	st8(a2, p[16:])
	st8(a3, p[24:])
	st8(a4, p[32:])
	st8(a5, p[40:])
}

// passB512 adds Cauchy projections sketchL2+16 .. sketchWidth-1 and the two norms' sums
// (lanes of one Float64x2).
func passB512(sum *sums, w *wideRow, t *projTable) {
	p := (*[48]float64)(sum.proj[48:])
	a0, a1, a2, a3, a4, a5 := ld8(p[0:]), ld8(p[8:]), ld8(p[16:]), ld8(p[24:]), ld8(p[32:]), ld8(p[40:])
	sa := archsimd.LoadFloat64x2(&sum.norms)
	x := w.x
	n := len(x) - 1
	cauchy, sqAbs := t.cauchy[:n*sketchL1], w.sqAbs[:2*n]
	for i := range n {
		xi := archsimd.LoadFloat64x2((*[2]float64)(x[i:])).Broadcast1To8()
		c := (*[48]float32)(cauchy[i*sketchL1+16:])
		a0 = a0.Add(cvt8(c[0:]).Mul(xi))
		a1 = a1.Add(cvt8(c[8:]).Mul(xi))
		a2 = a2.Add(cvt8(c[16:]).Mul(xi))
		a3 = a3.Add(cvt8(c[24:]).Mul(xi))
		a4 = a4.Add(cvt8(c[32:]).Mul(xi))
		a5 = a5.Add(cvt8(c[40:]).Mul(xi))
		sa = sa.Add(archsimd.LoadFloat64x2((*[2]float64)(sqAbs[2*i:])))
	}
	st8(a0, p[0:])
	st8(a1, p[8:])
	st8(a2, p[16:])
	st8(a3, p[24:])
	st8(a4, p[32:])
	st8(a5, p[40:])
	sa.Store(&sum.norms)
}

// passA256 adds, in lanes of four, the Rademacher projections 16h .. 16h+15 and Cauchy
// projections sketchL2+8h .. sketchL2+8h+7.
func passA256(sum *sums, x []float64, t *projTable, h int) {
	r := (*[16]float64)(sum.proj[16*h:])
	q := (*[8]float64)(sum.proj[sketchL2+8*h:])
	a0, a1, a2, a3, a4, a5 := ld4(r[0:]), ld4(r[4:]), ld4(r[8:]), ld4(r[12:]), ld4(q[0:]), ld4(q[4:])
	n := len(x) - 1
	signs, cauchy := t.signs[:n*sketchL2/8], t.cauchy[:n*sketchL1]
	for i := range n {
		xi := archsimd.LoadFloat64x2((*[2]float64)(x[i:])).Broadcast1To4()
		s := (*[2]uint8)(signs[i*sketchL2/8+2*h:])
		c := (*[8]float32)(cauchy[i*sketchL1+8*h:])
		s0, s1 := &signVec[s[0]], &signVec[s[1]]
		a0 = a0.Add(ld4(s0[0:]).Mul(xi))
		a1 = a1.Add(ld4(s0[4:]).Mul(xi))
		a2 = a2.Add(ld4(s1[0:]).Mul(xi))
		a3 = a3.Add(ld4(s1[4:]).Mul(xi))
		a4 = a4.Add(cvt4(c[0:]).Mul(xi))
		a5 = a5.Add(cvt4(c[4:]).Mul(xi))
	}
	st4(a0, r[0:])
	st4(a1, r[4:])
	st4(a2, r[8:])
	st4(a3, r[12:])
	st4(a4, q[0:])
	st4(a5, q[4:])
}

// passB256 adds, in lanes of four, Cauchy projections sketchL2+j0 .. sketchL2+j0+23.
func passB256(sum *sums, x []float64, t *projTable, j0 int) {
	p := (*[24]float64)(sum.proj[sketchL2+j0:])
	a0, a1, a2, a3, a4, a5 := ld4(p[0:]), ld4(p[4:]), ld4(p[8:]), ld4(p[12:]), ld4(p[16:]), ld4(p[20:])
	n := len(x) - 1
	cauchy := t.cauchy[:n*sketchL1]
	for i := range n {
		xi := archsimd.LoadFloat64x2((*[2]float64)(x[i:])).Broadcast1To4()
		c := (*[24]float32)(cauchy[i*sketchL1+j0:])
		a0 = a0.Add(cvt4(c[0:]).Mul(xi))
		a1 = a1.Add(cvt4(c[4:]).Mul(xi))
		a2 = a2.Add(cvt4(c[8:]).Mul(xi))
		a3 = a3.Add(cvt4(c[12:]).Mul(xi))
		a4 = a4.Add(cvt4(c[16:]).Mul(xi))
		a5 = a5.Add(cvt4(c[20:]).Mul(xi))
	}
	st4(a0, p[0:])
	st4(a1, p[4:])
	st4(a2, p[8:])
	st4(a3, p[12:])
	st4(a4, p[16:])
	st4(a5, p[20:])
}

// norms adds the two norms' sums (lanes of one Float64x2).
func norms(sum *sums, w *wideRow) {
	sa := archsimd.LoadFloat64x2(&sum.norms)
	for i := 0; i+1 < len(w.sqAbs); i += 2 {
		sa = sa.Add(archsimd.LoadFloat64x2((*[2]float64)(w.sqAbs[i:])))
	}
	sa.Store(&sum.norms)
}
