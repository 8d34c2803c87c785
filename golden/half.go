package golden

import "math"

// RoundF16 rounds x to the nearest IEEE half-precision value, ties to even, and widens it
// back: what a kernel that stores x as f16 and reads it again gets. Magnitudes of 65520 and
// more become infinities, values below 2^-14 land on half's subnormal grid (steps of
// 2^-24). A NaN stays a NaN of the same sign, quiet, with the top 10 bits of its payload.
// The bit operations are the same in the device's fault kernel (kernels/ops.hip).
func RoundF16(x float32) float32 {
	b := math.Float32bits(x)
	sign, abs := b&0x80000000, b&0x7fffffff
	switch {
	case abs > 0x7f800000: // NaN
		return math.Float32frombits(sign | 0x7fc00000 | abs&0x007fe000)
	case abs >= 0x477ff000: // 65520 and more (and infinity): past half's largest, 65504
		return math.Float32frombits(sign | 0x7f800000)
	case abs >= 0x38800000: // half's normal range: keep 10 mantissa bits, round at bit 13
		return math.Float32frombits(sign | (abs+0x0fff+(abs>>13)&1)&^0x1fff)
	}
	// Half subnormals are multiples of 2^-24; scaling by 2^24 is exact and leaves a value
	// below 1024 whose rounding to an integer, ties to even, is the half's.
	q := math.RoundToEven(float64(math.Float32frombits(abs)) * (1 << 24))
	return math.Float32frombits(sign | math.Float32bits(float32(q/(1<<24))))
}

// RoundBF16 rounds x to the nearest bfloat16, ties to even, and widens it back: float32
// with the low 16 bits rounded away. Overflow rounds to infinity; a NaN stays a NaN of the
// same sign, quiet, with the top 7 bits of its payload.
func RoundBF16(x float32) float32 {
	b := math.Float32bits(x)
	if b&0x7fffffff > 0x7f800000 {
		return math.Float32frombits(b&0x80000000 | 0x7fc00000 | b&0x007f0000)
	}
	return math.Float32frombits((b + 0x7fff + (b>>16)&1) &^ 0xffff)
}
