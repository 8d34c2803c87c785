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
	passA512(sum, *w, t.elems)
	passB512(sum, *w, t.elems)
	archsimd.ClearAVXUpperBits()
	widened.Put(w)
}

func accumulateAVX2(sum *sums, row []float32, t *projTable) {
	w := widen(row)
	passA256(sum, *w, t.elems, 0)
	passA256(sum, *w, t.elems, 1)
	passB256(sum, *w, t.elems, 16)
	passB256(sum, *w, t.elems, 40)
	norms(sum, *w)
	archsimd.ClearAVXUpperBits()
	widened.Put(w)
}

// wideElem is an element x of a row prepared for the vector loops by scalar code that runs
// before them: {x, x*x, |x|} in float64, so the loops broadcast x from the first pair and add
// the norms' terms from the second. Converting x inside the loops would put legacy SSE
// instructions among the AVX ones, a state transition per element that made them several
// times slower.
type wideElem = [3]float64

var widened = sync.Pool{New: func() any { return new([]wideElem) }}

func widen(row []float32) *[]wideElem {
	w := widened.Get().(*[]wideElem)
	if cap(*w) < len(row) {
		*w = make([]wideElem, len(row))
	}
	*w = (*w)[:len(row)]
	for i, v := range row {
		x := float64(v)
		(*w)[i] = wideElem{x, float64(x * x), math.Abs(x)}
	}
	return w
}

type (
	f64x8 = archsimd.Float64x8
	f64x4 = archsimd.Float64x4
)

func ld8(p []float64) f64x8    { return archsimd.LoadFloat64x8((*[8]float64)(p)) }
func ld4(p []float64) f64x4    { return archsimd.LoadFloat64x4((*[4]float64)(p)) }
func st8(a f64x8, p []float64) { a.Store((*[8]float64)(p)) }
func st4(a f64x4, p []float64) { a.Store((*[4]float64)(p)) }

func cvt8(p []float32) f64x8 {
	return archsimd.LoadFloat32x8((*[8]float32)(p)).ConvertToFloat64()
}

func cvt4(p []float32) f64x4 {
	return archsimd.LoadFloat32x4((*[4]float32)(p)).ConvertToFloat64()
}

// x8 and x4 broadcast the element of w.
func x8(w *wideElem) f64x8 { return archsimd.LoadFloat64x2((*[2]float64)(w[:2])).Broadcast1To8() }
func x4(w *wideElem) f64x4 { return archsimd.LoadFloat64x2((*[2]float64)(w[:2])).Broadcast1To4() }

// sqAbs loads the norms' terms of the element of w.
func sqAbs(w *wideElem) archsimd.Float64x2 { return archsimd.LoadFloat64x2((*[2]float64)(w[1:])) }

// passA512 adds the sketchL2 Rademacher projections (lane k of a0..a3 is projection 8g+k)
// and Cauchy projections sketchL2 .. sketchL2+15.
func passA512(sum *sums, w []wideElem, el []projElem) {
	p := &sum.proj
	a0, a1, a2, a3, a4, a5 := ld8(p[0:]), ld8(p[8:]), ld8(p[16:]), ld8(p[24:]), ld8(p[32:]), ld8(p[40:])
	el = el[:len(w)]
	for i := range w {
		x, e := x8(&w[i]), &el[i]
		a0 = a0.Add(ld8(signVec[e.signs[0]][:]).Mul(x))
		a1 = a1.Add(ld8(signVec[e.signs[1]][:]).Mul(x))
		a2 = a2.Add(ld8(signVec[e.signs[2]][:]).Mul(x))
		a3 = a3.Add(ld8(signVec[e.signs[3]][:]).Mul(x))
		a4 = a4.Add(cvt8(e.cauchy[0:]).Mul(x))
		a5 = a5.Add(cvt8(e.cauchy[8:]).Mul(x))
	}
	st8(a0, p[0:])
	st8(a1, p[8:])
	st8(a2, p[16:])
	st8(a3, p[24:])
	st8(a4, p[32:])
	st8(a5, p[40:])
}

// passB512 adds Cauchy projections sketchL2+16 .. sketchWidth-1 and the norms' sums (the
// lanes of one Float64x2).
func passB512(sum *sums, w []wideElem, el []projElem) {
	p := (*[48]float64)(sum.proj[48:])
	a0, a1, a2, a3, a4, a5 := ld8(p[0:]), ld8(p[8:]), ld8(p[16:]), ld8(p[24:]), ld8(p[32:]), ld8(p[40:])
	n := archsimd.LoadFloat64x2(&sum.norms)
	el = el[:len(w)]
	for i := range w {
		x, e := x8(&w[i]), &el[i]
		a0 = a0.Add(cvt8(e.cauchy[16:]).Mul(x))
		a1 = a1.Add(cvt8(e.cauchy[24:]).Mul(x))
		a2 = a2.Add(cvt8(e.cauchy[32:]).Mul(x))
		a3 = a3.Add(cvt8(e.cauchy[40:]).Mul(x))
		a4 = a4.Add(cvt8(e.cauchy[48:]).Mul(x))
		a5 = a5.Add(cvt8(e.cauchy[56:]).Mul(x))
		n = n.Add(sqAbs(&w[i]))
	}
	st8(a0, p[0:])
	st8(a1, p[8:])
	st8(a2, p[16:])
	st8(a3, p[24:])
	st8(a4, p[32:])
	st8(a5, p[40:])
	n.Store(&sum.norms)
}

// passA256 adds, in lanes of four, the Rademacher projections 16h .. 16h+15 and Cauchy
// projections sketchL2+8h .. sketchL2+8h+7.
func passA256(sum *sums, w []wideElem, el []projElem, h int) {
	r := (*[16]float64)(sum.proj[16*h:])
	q := (*[8]float64)(sum.proj[sketchL2+8*h:])
	a0, a1, a2, a3, a4, a5 := ld4(r[0:]), ld4(r[4:]), ld4(r[8:]), ld4(r[12:]), ld4(q[0:]), ld4(q[4:])
	el = el[:len(w)]
	for i := range w {
		x, e := x4(&w[i]), &el[i]
		s0, s1 := &signVec[e.signs[2*h]], &signVec[e.signs[2*h+1]]
		c := (*[8]float32)(e.cauchy[8*h:])
		a0 = a0.Add(ld4(s0[0:]).Mul(x))
		a1 = a1.Add(ld4(s0[4:]).Mul(x))
		a2 = a2.Add(ld4(s1[0:]).Mul(x))
		a3 = a3.Add(ld4(s1[4:]).Mul(x))
		a4 = a4.Add(cvt4(c[0:]).Mul(x))
		a5 = a5.Add(cvt4(c[4:]).Mul(x))
	}
	st4(a0, r[0:])
	st4(a1, r[4:])
	st4(a2, r[8:])
	st4(a3, r[12:])
	st4(a4, q[0:])
	st4(a5, q[4:])
}

// passB256 adds, in lanes of four, Cauchy projections sketchL2+j0 .. sketchL2+j0+23.
func passB256(sum *sums, w []wideElem, el []projElem, j0 int) {
	p := (*[24]float64)(sum.proj[sketchL2+j0:])
	a0, a1, a2, a3, a4, a5 := ld4(p[0:]), ld4(p[4:]), ld4(p[8:]), ld4(p[12:]), ld4(p[16:]), ld4(p[20:])
	el = el[:len(w)]
	for i := range w {
		x := x4(&w[i])
		c := (*[24]float32)(el[i].cauchy[j0:])
		a0 = a0.Add(cvt4(c[0:]).Mul(x))
		a1 = a1.Add(cvt4(c[4:]).Mul(x))
		a2 = a2.Add(cvt4(c[8:]).Mul(x))
		a3 = a3.Add(cvt4(c[12:]).Mul(x))
		a4 = a4.Add(cvt4(c[16:]).Mul(x))
		a5 = a5.Add(cvt4(c[20:]).Mul(x))
	}
	st4(a0, p[0:])
	st4(a1, p[4:])
	st4(a2, p[8:])
	st4(a3, p[12:])
	st4(a4, p[16:])
	st4(a5, p[20:])
}

// norms adds the norms' sums (the lanes of one Float64x2).
func norms(sum *sums, w []wideElem) {
	n := archsimd.LoadFloat64x2(&sum.norms)
	for i := range w {
		n = n.Add(sqAbs(&w[i]))
	}
	n.Store(&sum.norms)
}
