//go:build goexperiment.simd && amd64

package ref

import "simd/archsimd"

// The SIMD kernels (kernels_avx512.go, kernels_avx2.go) keep the portable layout's 16 lanes
// in vector accumulators and use Mul then Add, which round exactly like float32(a*b) then +;
// after the loop the lanes are stored and finished by the shared scalar code. They give the
// portable kernels' bits, only faster.

// isa is an instruction set the kernels can use.
type isa int

const (
	isaPortable isa = iota
	isaAVX2
	isaAVX512
)

var isaNames = [...]string{"portable", "avx2", "avx512"}

// best is the widest instruction set of this machine; simd the one in use (tests switch it
// to check every path).
var (
	best = func() isa {
		switch {
		case archsimd.X86.AVX512():
			return isaAVX512
		case archsimd.X86.AVX2():
			return isaAVX2
		}
		return isaPortable
	}()
	simd = best
)

// Kernel names the inner-loop implementation in use.
func Kernel() string { return isaNames[simd] }

func dot(a, b []float32) float32 {
	switch {
	case len(a) < lanes:
	case simd == isaAVX512:
		return dot16(a, b)
	case simd == isaAVX2:
		return dot8(a, b)
	}
	return dotPortable(a, b)
}

func axpy(y []float32, a float32, x []float32) {
	switch {
	case len(y) < lanes:
	case simd == isaAVX512:
		axpy16(y, a, x)
		return
	case simd == isaAVX2:
		axpy8(y, a, x)
		return
	}
	axpyPortable(y, a, x)
}

func matmul(w []float32, cols int, x []float32, nt int, y []float32, ys, r0, r1 int) {
	switch {
	case cols < lanes:
	case simd == isaAVX512:
		matmul16(w, cols, x, nt, y, ys, r0, r1)
		return
	case simd == isaAVX2:
		matmul8(w, cols, x, nt, y, ys, r0, r1)
		return
	}
	matmulPortable(w, cols, x, nt, y, ys, r0, r1)
}

// finishTile adds the tails from n on and folds the lanes of a tile's accumulators, stored
// in l by token then row: y[t*ys+r] = w_r . x_t.
func finishTile(l [][lanes]float32, ws, xs [][]float32, n int, y []float32, ys int) {
	for t, x := range xs {
		for r, w := range ws {
			acc := &l[t*len(ws)+r]
			addTail(acc, w, x, n)
			y[t*ys+r] = reduce16(acc)
		}
	}
}
