package gguf

import "math"

// f16Table maps every IEEE half-precision bit pattern to its float32 value: a table load is
// several times faster than converting bit fields per element.
var f16Table = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for h := range t {
		t[h] = halfToFloat(uint16(h))
	}
	return &t
}()

// F16ToFloat32 converts IEEE half-precision bits to float32 exactly, as ggml does: NaNs
// keep their payload and sign and come out quiet.
func F16ToFloat32(h uint16) float32 { return f16Table[h] }

func halfToFloat(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f && mant != 0: // NaN: quieted, as ggml's conversion (and F16C) does
		return math.Float32frombits(sign | 0x7fc00000 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000)
	case exp != 0:
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: normalise the mantissa into float32's wider exponent range.
	e := uint32(127 - 15 + 1)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}

// Float32ToF16 converts f to IEEE half precision, rounding to nearest even as ggml does;
// magnitudes beyond the half range become infinities and NaN becomes the quiet NaN 0x7e00
// with f's sign.
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e >= 1 {
		h := uint32(e)<<10 | mant>>13
		h += roundUp(mant&0x1fff, 0x1000, h)
		return sign | uint16(h) // a carry into the exponent is the correct rounding (to inf at the top)
	}
	// Subnormal half: units of 2^-24; f = m * 2^(e-14) units with the implicit bit set.
	shift := uint(14 - e)
	if shift > 24 {
		return sign
	}
	m := mant | 0x800000
	h := m >> shift
	h += roundUp(m&(1<<shift-1), 1<<(shift-1), h)
	return sign | uint16(h)
}

// roundUp returns 1 when the discarded bits rem (half is the value of one half unit) round
// kept up to nearest, ties to even.
func roundUp(rem, half, kept uint32) uint32 {
	if rem > half || rem == half && kept&1 == 1 {
		return 1
	}
	return 0
}

// BF16ToFloat32 converts bfloat16 bits to float32 (exact).
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBF16 converts f to bfloat16 rounding to nearest even, as ggml does; NaN stays NaN
// with the quiet bit forced.
func Float32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}
