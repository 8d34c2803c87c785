package ref

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randomVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// TestKernelsMatchLayout checks every kernel this machine can run (AVX-512, AVX2 and
// portable in a SIMD build) against the scalar definition of the layout, bit for bit, for
// lengths with and without tails and tile shapes with leftover rows and tokens.
func TestKernelsMatchLayout(t *testing.T) { forEachKernel(t, testKernelsMatchLayout) }

func testKernelsMatchLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, cols := range []int{1, 15, 16, 17, 64, 72, 100, 128, 129, 144, 256} {
		a, b := randomVec(rng, cols), randomVec(rng, cols)
		if got, want := dot(a, b), layoutDot(a, b); math.Float32bits(got) != math.Float32bits(want) {
			t.Errorf("%s dot of %d: %x, want %x", Kernel(), cols, math.Float32bits(got), math.Float32bits(want))
		}
		for _, shape := range [][2]int{{1, 1}, {4, 1}, {4, 4}, {9, 7}, {16, 5}} {
			rows, nt := shape[0], shape[1]
			w, x := randomVec(rng, rows*cols), randomVec(rng, nt*cols)
			y := make([]float32, nt*rows)
			matmul(w, cols, x, nt, y, rows, 0, rows)
			for tk := range nt {
				for r := range rows {
					want := layoutDot(w[r*cols:(r+1)*cols], x[tk*cols:(tk+1)*cols])
					if got := y[tk*rows+r]; math.Float32bits(got) != math.Float32bits(want) {
						t.Fatalf("%s matmul %dx%d by %d tokens: y[%d][%d] = %x, want %x",
							Kernel(), rows, cols, nt, tk, r, math.Float32bits(got), math.Float32bits(want))
					}
				}
			}
		}
		y, x := randomVec(rng, cols), randomVec(rng, cols)
		want := append([]float32(nil), y...)
		axpy(y, 0.37, x)
		for i := range want {
			if w := want[i] + float32(0.37*x[i]); math.Float32bits(y[i]) != math.Float32bits(w) {
				t.Fatalf("%s axpy of %d: element %d = %v, want %v", Kernel(), cols, i, y[i], w)
			}
		}
	}
}

// layoutDot is the layout written as plainly as possible: lane i%16, then the tree.
func layoutDot(a, b []float32) float32 {
	var acc [16]float32
	for i := range a {
		p := a[i] * b[i]
		acc[i%16] = acc[i%16] + p
	}
	for width := 8; width >= 1; width /= 2 {
		for j := range width {
			acc[j] = acc[j] + acc[j+width]
		}
	}
	return acc[0]
}

func BenchmarkDot(b *testing.B) {
	for _, n := range []int{64, 2048} {
		rng := rand.New(rand.NewPCG(1, 2))
		x, y := randomVec(rng, n), randomVec(rng, n)
		b.Run(fmt.Sprintf("%s/%d", Kernel(), n), func(b *testing.B) {
			var s float32
			for b.Loop() {
				s += dot(x, y)
			}
			_ = s
		})
	}
}

func BenchmarkMatmul(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	rows, cols, nt := 256, 2048, 64
	w, x := randomVec(rng, rows*cols), randomVec(rng, nt*cols)
	y := make([]float32, rows*nt)
	b.Run(fmt.Sprintf("%s/%dx%dx%d", Kernel(), rows, cols, nt), func(b *testing.B) {
		for b.Loop() {
			matmul(w, cols, x, nt, y, rows, 0, rows)
		}
		b.ReportMetric(float64(2*rows*cols*nt)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}
