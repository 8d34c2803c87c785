package golden

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// halfValues lists every finite non-negative half value, ascending, with its bits.
func halfValues() (vals []float32, bits []uint16) {
	for h := uint16(0); h < 0x7c00; h++ {
		vals = append(vals, halfToFloat32(h))
		bits = append(bits, h)
	}
	return vals, bits
}

// nearestHalf is the oracle: the nearest half by search over every half value, ties to the
// even one, past the largest half's rounding bound to infinity.
func nearestHalf(x float32, vals []float32, bits []uint16) float32 {
	a := math.Abs(float64(x))
	sign := float32(1)
	if math.Signbit(float64(x)) {
		sign = -1
	}
	if a >= 65520 {
		return sign * float32(math.Inf(1))
	}
	i := sort.Search(len(vals), func(i int) bool { return float64(vals[i]) >= a })
	if i < len(vals) && float64(vals[i]) == a {
		return sign * vals[i]
	}
	if i == len(vals) { // between 65504 and 65520
		return sign * vals[len(vals)-1]
	}
	lo, hi := vals[i-1], vals[i]
	dlo, dhi := a-float64(lo), float64(hi)-a
	switch {
	case dlo < dhi, dlo == dhi && bits[i-1]%2 == 0:
		return sign * lo
	}
	return sign * hi
}

func TestRoundF16(t *testing.T) {
	vals, bits := halfValues()
	for _, v := range vals { // every half is a fixed point
		for _, s := range []float32{1, -1} {
			if got := RoundF16(s * v); math.Float32bits(got) != math.Float32bits(s*v) {
				t.Fatalf("RoundF16(%g) = %g, want itself", s*v, got)
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(x float32) {
		if math.IsNaN(float64(x)) {
			return
		}
		want := nearestHalf(x, vals, bits)
		if got := RoundF16(x); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("RoundF16(%g = %#08x) = %g, want %g", x, math.Float32bits(x), got, want)
		}
	}
	for i := 0; i < 200000; i++ {
		check(math.Float32frombits(rng.Uint32() & 0xffffffff))
		// Midpoints between neighbouring halves, where ties to even decide.
		j := rng.IntN(len(vals) - 1)
		mid := float32((float64(vals[j]) + float64(vals[j+1])) / 2)
		check(mid)
		check(-mid)
	}
	for _, x := range []float32{65504, 65519.99, 65520, 1e10, 5.960464e-8, 2.980232e-8, 2.9802326e-8, 1e-45, 0} {
		check(x)
	}
	if got := RoundF16(float32(math.Inf(-1))); !math.IsInf(float64(got), -1) {
		t.Errorf("RoundF16(-Inf) = %g", got)
	}
	if got := math.Float32bits(RoundF16(math.Float32frombits(0xffa12345))); got != 0xffe12000 {
		t.Errorf("RoundF16 of a signalling NaN = %#08x, want the quiet 0xffe12000", got)
	}
}

func TestRoundBF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 200000; i++ {
		b := rng.Uint32()
		if i%2 == 0 {
			b = b&^0xffff | 0x8000 // a tie
		}
		x := math.Float32frombits(b)
		if math.IsNaN(float64(x)) {
			continue
		}
		lo := math.Float32frombits(b &^ 0xffff)
		hi := math.Float32frombits(b&^0xffff + 0x10000) // next bf16 away from zero (or Inf)
		hv := math.Abs(float64(hi))
		if math.IsInf(hv, 0) {
			hv = 0x1p128 // where the exponent range ends: what rounding to infinity is measured from
		}
		dlo, dhi := math.Abs(float64(x)-float64(lo)), hv-math.Abs(float64(x))
		want := hi
		if dlo < dhi || (dlo == dhi && (b>>16)%2 == 0) {
			want = lo
		}
		if got := RoundBF16(x); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("RoundBF16(%g = %#08x) = %#08x, want %#08x", x, b, math.Float32bits(got), math.Float32bits(want))
		}
	}
	if got := math.Float32bits(RoundBF16(math.Float32frombits(0x7f812345))); got != 0x7fc10000 {
		t.Errorf("RoundBF16 of a signalling NaN = %#08x, want the quiet 0x7fc10000", got)
	}
}
