// Package detmath holds elementary functions whose every bit is fixed by this file, for the
// CPU reference's numeric path and for generated model data. The math package's Exp, Log,
// Sin and Cos are assembly on some architectures and fused-multiply-add pure Go on others,
// so their last bit depends on the machine; these do not. Every multiply that feeds an add
// is wrapped in an explicit float64(...) conversion, which forbids the compiler to fuse them.
// Accuracy is about 1 ulp of float64, far below the float32 rounding that follows.
package detmath

import "math"

var invFact = [...]float64{
	1, 1, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
	1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800,
	1.0 / 87178291200, 1.0 / 1307674368000, 1.0 / 20922789888000, 1.0 / 355687428096000,
	1.0 / 6402373705728000, 1.0 / 121645100408832000, 1.0 / 2432902008176640000, 1.0 / 51090942171709440000,
}

// ln 2 split so that k*ln2Hi is exact for |k| < 2^11: the high part has trailing zero bits.
var (
	ln2Hi = math.Float64frombits(0x3fe62e42fee00000)
	ln2Lo = math.Float64frombits(0x3dea39ef35793c76)
)

// pi/2 in three parts of 33, 33 and 53 bits, so that k*pio2a and k*pio2b are exact for
// |k| < 2^20 (angles up to about 1.6e6 radians).
var (
	pio2a = math.Float64frombits(0x3ff921fb54400000)
	pio2b = math.Float64frombits(0x3dd0b4611a600000)
	pio2c = math.Float64frombits(0x3ba3198a2e037073)
)

const (
	log2e     = 1.44269504088896340736
	twoOverPi = 0.63661977236758134308
)

// Exp returns e**x; the Taylor series runs to r^13, whose first omitted term is below 5e-18.
func Exp(x float64) float64 { return expSeries(x, 13) }

// ExpF32 returns e**x for results that are rounded to float32: the Taylor series stops at
// r^9 (relative error below 1e-11, far under float32's 6e-8), which makes it cheaper than
// Exp for softmax and SiLU.
func ExpF32(x float64) float64 { return expSeries(x, 9) }

// expSeries returns e**x = 2^k e^r with |r| <= ln2/2 (plus rounding) and e^r summed as a
// Taylor series to r^order.
func expSeries(x float64, order int) float64 {
	switch {
	case x != x:
		return x
	case x > 709.8:
		return math.Inf(1)
	case x < -745.2:
		return 0
	}
	k := math.Floor(float64(x*log2e) + 0.5)
	r := float64(x-float64(k*ln2Hi)) - float64(k*ln2Lo)
	p := invFact[order]
	for i := order - 1; i >= 0; i-- {
		p = float64(p*r) + invFact[i]
	}
	return scalb(p, int(k))
}

// scalb returns p * 2**k for p in [0.5, 2) with a single rounding.
func scalb(p float64, k int) float64 {
	switch {
	case k > 1023:
		return p * pow2(1023) * pow2(k-1023)
	case k < -1022:
		return p * pow2(-1022) * pow2(k+1022) // the first product is exact
	}
	return p * pow2(k)
}

// pow2 returns 2**k for -1022 <= k <= 1023.
func pow2(k int) float64 { return math.Float64frombits(uint64(k+1023) << 52) }

// Log returns the natural logarithm of a positive, finite, normal x; anything else gives NaN.
func Log(x float64) float64 {
	if !(x >= math.SmallestNonzeroFloat64*(1<<52)) || math.IsInf(x, 1) {
		return math.NaN()
	}
	bits := math.Float64bits(x)
	e := int(bits>>52) - 1023
	m := math.Float64frombits(bits&(1<<52-1) | 1023<<52) // [1, 2)
	if m > math.Sqrt2 {
		m /= 2
		e++
	}
	// log m = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716: the series to s^27 is exact to 1e-20.
	s := (m - 1) / (m + 1)
	z := s * s
	p := 1.0 / 27
	for k := 25; k >= 1; k -= 2 {
		p = float64(p*z) + 1/float64(k)
	}
	lm := float64(float64(2*s) * p)
	fe := float64(e)
	return float64(fe*ln2Hi) + (float64(fe*ln2Lo) + lm)
}

// Sincos returns sin x and cos x.
func Sincos(x float64) (sin, cos float64) {
	if math.IsInf(x, 0) || x != x {
		return math.NaN(), math.NaN()
	}
	k := math.Floor(float64(x*twoOverPi) + 0.5)
	r := float64(x-float64(k*pio2a)) - float64(k*pio2b)
	r -= float64(k * pio2c) // |r| <= pi/4 (plus rounding)
	z := r * r
	// Taylor series: sin to r^21, cos to r^20; the first omitted terms are below 1e-21.
	ps := invFact[21]
	for i := 19; i >= 3; i -= 2 {
		ps = invFact[i] - float64(ps*z)
	}
	s := r - float64(float64(r*z)*ps)
	pc := invFact[20]
	for i := 18; i >= 2; i -= 2 {
		pc = invFact[i] - float64(pc*z)
	}
	c := 1 - float64(z*pc)
	switch int64(k) & 3 {
	case 0:
		return s, c
	case 1:
		return c, -s
	case 2:
		return -s, -c
	}
	return -c, s
}
