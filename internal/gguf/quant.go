package gguf

import (
	"fmt"
	"math"
)

// Quantize encodes src as type t into dst, the inverse of Dequantize: len(src) must be a
// whole number of blocks and len(dst) exactly their byte size. Types: F32, F16, BF16, Q8_0,
// Q4_K.
func Quantize(t Type, src []float32, dst []byte) error {
	ti, ok := t.info()
	if !ok {
		return fmt.Errorf("gguf: quantize: unknown ggml type %s", t)
	}
	n := uint64(len(src))
	if n%ti.block != 0 {
		return fmt.Errorf("gguf: quantize %s: %d elements not a multiple of the block size %d", t, n, ti.block)
	}
	if need := n / ti.block * ti.size; uint64(len(dst)) != need {
		return fmt.Errorf("gguf: quantize %s: %d elements need %d bytes, have %d", t, n, need, len(dst))
	}
	var q func(x []float32, y []byte)
	switch t {
	case F32:
		for i, v := range src {
			le.PutUint32(dst[4*i:], math.Float32bits(v))
		}
		return nil
	case F16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], Float32ToF16(v))
		}
		return nil
	case BF16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], Float32ToBF16(v))
		}
		return nil
	case Q8_0:
		q = quantQ8_0
	case Q4_K:
		q = quantQ4_K
	default:
		return fmt.Errorf("gguf: quantize: type %s not supported", t)
	}
	bs, es := int(ti.size), int(ti.block)
	for i := range len(src) / es {
		q(src[i*es:(i+1)*es], dst[i*bs:(i+1)*bs])
	}
	return nil
}

// QuantizeQ8_0 encodes len(src) (a multiple of 32) values as Q8_0 blocks into dst.
func QuantizeQ8_0(src []float32, dst []byte) error { return Quantize(Q8_0, src, dst) }

// QuantizeQ4_K encodes len(src) (a multiple of 256) values as Q4_K blocks into dst.
func QuantizeQ4_K(src []float32, dst []byte) error { return Quantize(Q4_K, src, dst) }

// quantQ8_0 follows ggml's reference: d = max|x|/127, q = round(x/d) (half away from zero).
func quantQ8_0(x []float32, y []byte) {
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	le.PutUint16(y, Float32ToF16(d))
	for j, v := range x[:32] {
		y[2+j] = byte(int8(math.Round(float64(v * id))))
	}
}

// quantQ4_K chooses, per sub-block of 32, a min m >= -min(x) and a scale so that every
// element lies in [0, 15] steps above -m, quantizing the sub-block scales and mins to six
// bits against the super-block's d and dmin. Scales and mins are rounded up, never down,
// so no element is clipped and the error of each is at most half its sub-block's step.
// This is simpler than ggml's iterative search and a little less accurate; the format is
// the same.
func quantQ4_K(x []float32, y []byte) {
	var mins, needs [8]float32
	var maxMin, maxNeed float32
	for s := range 8 {
		lo, hi := x[32*s], x[32*s]
		for _, v := range x[32*s : 32*s+32] {
			lo, hi = min(lo, v), max(hi, v)
		}
		mins[s] = max(0, -lo)
		needs[s] = max(0, hi+mins[s]) / 15
		maxMin, maxNeed = max(maxMin, mins[s]), max(maxNeed, needs[s])
	}
	dmin := f16Ceil(maxMin / 63)
	var m6, sc6 [8]uint8
	var dq float32
	for s := range 8 {
		m6[s] = ceil6(mins[s], dmin)
		// The scale must cover the quantized min, which may exceed the exact one.
		mq := dmin * float32(m6[s])
		needs[s] = max(needs[s], max(0, hiOf(x[32*s:32*s+32])+mq)/15)
		dq = max(dq, needs[s])
	}
	d := f16Ceil(dq / 63)
	for s := range 8 {
		sc6[s] = ceil6(needs[s], d)
	}
	le.PutUint16(y, Float32ToF16(d))
	le.PutUint16(y[2:], Float32ToF16(dmin))
	packScalesK4(y[4:16], sc6, m6)
	qs := y[16:144]
	for c := range 4 {
		for l := range 32 {
			lo := quant4(x[64*c+l], d*float32(sc6[2*c]), dmin*float32(m6[2*c]))
			hi := quant4(x[64*c+32+l], d*float32(sc6[2*c+1]), dmin*float32(m6[2*c+1]))
			qs[32*c+l] = lo | hi<<4
		}
	}
}

func hiOf(x []float32) float32 {
	hi := x[0]
	for _, v := range x {
		hi = max(hi, v)
	}
	return hi
}

// f16Ceil returns the smallest half-representable value >= v (v >= 0, finite).
func f16Ceil(v float32) float32 {
	h := Float32ToF16(v)
	if F16ToFloat32(h) < v {
		h++
	}
	return F16ToFloat32(h)
}

// ceil6 returns the smallest multiplier k in 0..63 with unit*k >= v (63 if none).
func ceil6(v, unit float32) uint8 {
	if unit == 0 || v <= 0 {
		return 0
	}
	k := min(63, int(math.Ceil(float64(v/unit))))
	for k < 63 && unit*float32(k) < v {
		k++
	}
	return uint8(k)
}

// quant4 returns round((v+m)/step) clamped to 0..15.
func quant4(v, step, m float32) byte {
	if step == 0 {
		return 0
	}
	q := math.Round(float64((v + m) / step))
	return byte(min(15, max(0, q)))
}

// packScalesK4 is the inverse of scaleMinK4.
func packScalesK4(s []byte, sc, m [8]uint8) {
	for j := range 4 {
		s[j] = sc[j]&63 | sc[j+4]>>4<<6
		s[j+4] = m[j]&63 | m[j+4]>>4<<6
		s[j+8] = sc[j+4]&0xf | m[j+4]&0xf<<4
	}
}
