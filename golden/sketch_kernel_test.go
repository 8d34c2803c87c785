package golden

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// referenceSums is the sketch computation as first written, kept as the oracle of the
// kernels: coefficients stored projection by projection (drawn element by element), one
// projection at a time over the whole row, the norms in their own loop.
func referenceSums(row []float32) sums {
	n := len(row)
	coef := make([]float32, n*sketchWidth)
	rng := splitmix64{state: uint64(n)*0xD1B54A32D192ED03 + SketchVersion}
	for i := 0; i < n; i++ {
		for j := 0; j < sketchL2; j++ {
			coef[j*n+i] = float32(1 - 2*int(rng.next()>>63))
		}
		for j := sketchL2; j < sketchWidth; j++ {
			coef[j*n+i] = float32(rng.cauchy())
		}
	}
	var s sums
	for _, v := range row {
		x := float64(v)
		s.norms[0] += float64(x * x)
		s.norms[1] += math.Abs(x)
	}
	for j := range s.proj {
		c := coef[j*n : (j+1)*n]
		var p float64
		for i, v := range row {
			p += float64(float64(c[i]) * float64(v))
		}
		s.proj[j] = p
	}
	return s
}

// specialRow returns n float32 values, mostly normal of varied scale, with zeros of both
// signs, subnormals, infinities and NaNs (the canonical quiet NaN, as a diverged engine
// produces, and another payload) sprinkled in when special is set.
func specialRow(rng *rand.Rand, n int, special bool) []float32 {
	nan2 := math.Float32frombits(0x7fc01234)
	row := make([]float32, n)
	for i := range row {
		row[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(13)-6)))
		if !special || rng.IntN(50) != 0 {
			continue
		}
		switch rng.IntN(8) {
		case 0:
			row[i] = 0
		case 1:
			row[i] = float32(math.Copysign(0, -1))
		case 2:
			row[i] = math.Float32frombits(uint32(1 + rng.IntN(1<<23))) // subnormal
		case 3:
			row[i] = -math.Float32frombits(uint32(1 + rng.IntN(1<<23)))
		case 4:
			row[i] = float32(math.Inf(1 - 2*rng.IntN(2)))
		case 5:
			row[i] = float32(math.NaN())
		case 6:
			row[i] = nan2
		case 7:
			row[i] = math.MaxFloat32
		}
	}
	return row
}

// sumBits lists the bits of every sum, NaNs as one value: IEEE arithmetic leaves the
// payload of a NaN sum of two NaNs to the operand order, which a compiler may swap, and the
// encoded sketch writes every NaN the same way.
func sumBits(s *sums) []uint64 {
	bits := make([]uint64, 0, 2+sketchWidth)
	for _, v := range append(s.norms[:], s.proj[:]...) {
		if v != v {
			v = math.NaN()
		}
		bits = append(bits, math.Float64bits(v))
	}
	return bits
}

// TestKernelsMatchReference checks every kernel this machine runs against the reference,
// bit for bit, on rows of many lengths (not only multiples of the vector width), with and
// without special values, lengths going up and down so pooled buffers are reused.
func TestKernelsMatchReference(t *testing.T) {
	lengths := []int{1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 255, 257, 1000, 2048, 4097, 40000, 5632, 3, 12345, 300}
	rng := rand.New(rand.NewPCG(11, 12))
	for k, n := range lengths {
		special := k%2 == 0
		row := specialRow(rng, n, special)
		want := sumBits(ptr(referenceSums(row)))
		table := newProjection(n)
		for _, kern := range kernels {
			var got sums
			kern.f(&got, row, table)
			for j, b := range sumBits(&got) {
				if b != want[j] {
					t.Errorf("%s, n=%d, special values %v: sum %d = %v (%#x), reference %v (%#x)",
						kern.name, n, special, j, math.Float64frombits(b), b, math.Float64frombits(want[j]), want[j])
					break
				}
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestKernelsAccumulate checks that a kernel adds to the sums it is given rather than
// overwriting them: the sums of a row split in two equal the sums of the whole row.
func TestKernelsAccumulate(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	const n = 203
	row := specialRow(rng, n, false)
	table := newProjection(n)
	for _, kern := range kernels {
		var whole, split sums
		kern.f(&whole, row, table)
		head, tail := &projTable{elems: table.elems[:100]}, &projTable{elems: table.elems[100:]}
		kern.f(&split, row[:100], head)
		kern.f(&split, row[100:], tail)
		if fmt.Sprint(sumBits(&whole)) != fmt.Sprint(sumBits(&split)) {
			t.Errorf("%s: sums of a row in two calls differ from one call", kern.name)
		}
	}
}
