package detmath

import (
	"math"
	"math/big"
	"testing"

	_ "github.com/gretabisect/gretabisect/internal/testutil"
)

// ulps returns the distance between a and b in units in the last place of b.
func ulps(a, b float64) float64 {
	if a == b {
		return 0
	}
	return math.Abs(a-b) / math.Abs(math.Nextafter(b, math.Inf(1))-b)
}

func TestExp64(t *testing.T) {
	for x := -700.0; x < 700; x += 0.37 {
		if d := ulps(Exp(x), math.Exp(x)); d > 2 {
			t.Fatalf("Exp(%v) = %v, math.Exp %v: %v ulps apart", x, Exp(x), math.Exp(x), d)
		}
	}
	for _, x := range []float64{-1e-300, 0, 1e-10, -0.5, 88.7, -103.9} {
		if d := ulps(Exp(x), math.Exp(x)); d > 2 {
			t.Errorf("Exp(%v) = %v, math.Exp %v", x, Exp(x), math.Exp(x))
		}
	}
	if Exp(-746) != 0 || !math.IsInf(Exp(710), 1) || !math.IsNaN(Exp(math.NaN())) || Exp(-740) == 0 {
		t.Errorf("Exp limits: %v %v %v %v", Exp(-746), Exp(710), Exp(math.NaN()), Exp(-740))
	}
}

func TestExpf(t *testing.T) {
	for x := -104.0; x < 89; x += 0.0137 {
		want := math.Exp(x)
		if d := math.Abs(ExpF32(x)-want) / want; d > 1e-11 {
			t.Fatalf("ExpF32(%v) = %v, math.Exp %v: relative error %g", x, ExpF32(x), want, d)
		}
	}
}

func TestLog64(t *testing.T) {
	for x := 1e-300; x < 1e300; x *= 1.7 {
		if d := ulps(Log(x), math.Log(x)); d > 2 {
			t.Fatalf("Log(%v) = %v, math.Log %v: %v ulps", x, Log(x), math.Log(x), d)
		}
	}
	for _, x := range []float64{10000, 500000, 1, math.Sqrt2, 0.99999} {
		if d := math.Abs(Log(x) - math.Log(x)); d > 4e-16*math.Max(1, math.Abs(math.Log(x))) {
			t.Errorf("Log(%v) = %v, math.Log %v", x, Log(x), math.Log(x))
		}
	}
	for _, x := range []float64{0, -1, math.Inf(1), math.NaN()} {
		if !math.IsNaN(Log(x)) {
			t.Errorf("Log(%v) = %v, want NaN", x, Log(x))
		}
	}
}

func TestSincos64(t *testing.T) {
	// The rope angles: positions up to 1e5 times frequencies up to 1; within 4 ulps of 1.
	for x := -3e4; x < 1e5; x += 0.913 {
		s, c := Sincos(x)
		if math.Abs(s-math.Sin(x)) > 4.5e-16 || math.Abs(c-math.Cos(x)) > 4.5e-16 {
			t.Fatalf("Sincos(%v) = %v, %v; math %v, %v", x, s, c, math.Sin(x), math.Cos(x))
		}
	}
	if s, c := Sincos(0); s != 0 || c != 1 {
		t.Errorf("Sincos(0) = %v, %v", s, c)
	}
}

// TestPiOver2Split checks the three-part pi/2 against 40 digits of pi.
func TestPiOver2Split(t *testing.T) {
	pi, _, _ := big.ParseFloat("3.141592653589793238462643383279502884197", 10, 200, big.ToNearestEven)
	want := new(big.Float).SetPrec(200).Quo(pi, big.NewFloat(2))
	got := new(big.Float).SetPrec(200).SetFloat64(pio2a)
	got.Add(got, new(big.Float).SetFloat64(pio2b))
	got.Add(got, new(big.Float).SetFloat64(pio2c))
	diff, _ := new(big.Float).Sub(got, want).Float64()
	if math.Abs(diff) > 1e-35 {
		t.Errorf("pio2a+pio2b+pio2c - pi/2 = %g", diff)
	}
	for _, p := range []float64{pio2a, pio2b} {
		if m := math.Float64bits(p) & (1<<20 - 1); m != 0 {
			t.Errorf("%v has %x in its low 20 mantissa bits: k*p would round", p, m)
		}
	}
}
