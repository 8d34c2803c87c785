package golden

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sumsFromCoefficients computes a sketch's sums the way a device does: one sequential
// float64 accumulator per sum over the flat coefficient table.
func sumsFromCoefficients(row []float32, coef []float32) (sumSq, sumAbs float64, proj [SketchProjections]float64) {
	for i, v := range row {
		x := float64(v)
		sumSq += float64(x * x)
		sumAbs += math.Abs(x)
		for j := range proj {
			proj[j] += float64(float64(coef[i*SketchProjections+j]) * x)
		}
	}
	return sumSq, sumAbs, proj
}

// sketchBits are a sketch's numbers as bits, so NaN compares equal to itself.
func sketchBits(s *Sketch) []uint64 {
	b := []uint64{uint64(s.Version), uint64(s.N), math.Float64bits(s.L2), math.Float64bits(s.L1)}
	for _, p := range s.Proj {
		b = append(b, math.Float64bits(p))
	}
	return b
}

func TestSketchFromSumsMatchesNewSketch(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	rows := map[string][]float32{
		"one":      {-2.5},
		"specials": {0, float32(math.Copysign(0, -1)), 1e-45, -3e38, 3e38, 1, -1},
		"inf":      {1, float32(math.Inf(1)), 2},
		"nan":      {1, float32(math.NaN()), 2},
	}
	for _, n := range []int{7, 64, 256, 2048, 32000} {
		row := make([]float32, n)
		for i := range row {
			row[i] = float32(rng.NormFloat64() * 4)
		}
		rows["normal/"+strconv.Itoa(n)] = row
	}
	for name, row := range rows {
		t.Run(name, func(t *testing.T) {
			coef := SketchCoefficients(len(row))
			if len(coef) != len(row)*SketchProjections {
				t.Fatalf("SketchCoefficients(%d): %d coefficients, want %d", len(row), len(coef), len(row)*SketchProjections)
			}
			sq, abs, proj := sumsFromCoefficients(row, coef)
			got, err := SketchFromSums(len(row), sq, abs, &proj)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(sketchBits(NewSketch(row)), sketchBits(got)); diff != "" {
				t.Errorf("sketch from the flat coefficients differs from NewSketch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSketchCoefficientsLayout(t *testing.T) {
	coef := SketchCoefficients(300)
	for i := range 300 {
		for j := range SketchProjections {
			c := coef[i*SketchProjections+j]
			if j < SketchSigns && c != 1 && c != -1 {
				t.Fatalf("coefficient (%d, %d) = %v, want +-1", i, j, c)
			}
			if j >= SketchSigns && (c != c || math.IsInf(float64(c), 0)) {
				t.Fatalf("Cauchy coefficient (%d, %d) = %v, want finite", i, j, c)
			}
		}
	}
	if SketchCoefficients(0) != nil {
		t.Error("SketchCoefficients(0) is not empty")
	}
	if _, err := SketchFromSums(-1, 0, 0, new([SketchProjections]float64)); err == nil {
		t.Error("SketchFromSums(-1, ...) took a negative row length")
	}
}
