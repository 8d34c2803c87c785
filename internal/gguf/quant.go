package gguf

import (
	"fmt"
	"math"
)

// Quantize encodes src as type t into dst, the inverse of Dequantize: len(src) must be a
// whole number of blocks and len(dst) exactly their byte size. Types: F32, F16, BF16, Q8_0,
// Q4_0, Q5_0 (these three as ggml's reference quantizers compute them), Q4_K, Q5_K, Q6_K.
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
	case Q4_0:
		q = quantQ4_0
	case Q5_0:
		q = quantQ5_0
	case Q4_K:
		q = quantQ4_K
	case Q5_K:
		q = quantQ5_K
	case Q6_K:
		q = quantQ6_K
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

// signedMax returns the element of largest magnitude, with its sign (the first on ties).
func signedMax(x []float32) float32 {
	var amax, m float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > amax {
			amax, m = a, v
		}
	}
	return m
}

// quantQ4_0 follows ggml's reference: d = max/-8 for the signed extreme max, so that it
// maps to level 0; q = min(15, trunc(x/d + 8.5)).
func quantQ4_0(x []float32, y []byte) {
	d := signedMax(x) / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	le.PutUint16(y, Float32ToF16(d))
	for j := range 16 {
		lo := min(15, int8(float32(x[j]*id)+8.5))
		hi := min(15, int8(float32(x[j+16]*id)+8.5))
		y[2+j] = byte(lo) | byte(hi)<<4
	}
}

// quantQ5_0 follows ggml's reference: d = max/-16, q = min(31, trunc(x/d + 16.5)), the
// fifth bits gathered in qh.
func quantQ5_0(x []float32, y []byte) {
	d := signedMax(x) / -16
	var id float32
	if d != 0 {
		id = 1 / d
	}
	le.PutUint16(y, Float32ToF16(d))
	var qh uint32
	for j := range 16 {
		lo := uint32(min(31, int8(float32(x[j]*id)+16.5)))
		hi := uint32(min(31, int8(float32(x[j+16]*id)+16.5)))
		y[6+j] = byte(lo&0xf) | byte(hi&0xf)<<4
		qh |= (lo>>4)<<j | (hi>>4)<<(j+16)
	}
	le.PutUint32(y[2:], qh)
}

// kQuant holds a k-quant super-block's parameters: y = d*sc[s]*q - dmin*m[s] for
// sub-block s of 32 elements.
type kQuant struct {
	d, dmin float32
	sc, m   [8]uint8
}

// kScales chooses, per sub-block of 32, a min m >= -min(x) and a scale so that every
// element lies within levels-1 steps above -m, quantizing the sub-block scales and mins to
// six bits against the super-block's d and dmin. Scales and mins are rounded up, never
// down, so no element is clipped and the error of each is at most half its sub-block's
// step. This is simpler than ggml's iterative search and a little less accurate; the
// format is the same.
func kScales(x []float32, levels int) kQuant {
	var k kQuant
	var mins, his [8]float32
	var maxMin float32
	for s := range 8 {
		lo, hi := x[32*s], x[32*s]
		for _, v := range x[32*s : 32*s+32] {
			lo, hi = min(lo, v), max(hi, v)
		}
		mins[s], his[s] = max(0, -lo), hi
		maxMin = max(maxMin, mins[s])
	}
	k.dmin = f16Ceil(maxMin / 63)
	var needs [8]float32
	var maxNeed float32
	for s := range 8 {
		k.m[s] = uint8(ceilMul(mins[s], k.dmin, 63))
		// The scale must cover the quantized min, which may exceed the exact one.
		needs[s] = max(0, his[s]+k.dmin*float32(k.m[s])) / float32(levels-1)
		maxNeed = max(maxNeed, needs[s])
	}
	k.d = f16Ceil(maxNeed / 63)
	for s := range 8 {
		k.sc[s] = uint8(ceilMul(needs[s], k.d, 63))
	}
	return k
}

// level returns element i's level, round((x+m)/step) clamped to 0..levels-1.
func (k *kQuant) level(x []float32, i, levels int) byte {
	s := i / 32
	step := k.d * float32(k.sc[s])
	if step == 0 {
		return 0
	}
	q := math.Round(float64((x[i] + k.dmin*float32(k.m[s])) / step))
	return byte(min(float64(levels-1), max(0, q)))
}

func (k *kQuant) putHeader(y []byte) {
	le.PutUint16(y, Float32ToF16(k.d))
	le.PutUint16(y[2:], Float32ToF16(k.dmin))
	packScalesK4(y[4:16], k.sc, k.m)
}

// quantQ4_K: element 64c+l in the low nibble of qs[32c+l], element 64c+32+l in the high.
func quantQ4_K(x []float32, y []byte) {
	k := kScales(x, 16)
	k.putHeader(y)
	qs := y[16:144]
	for c := range 4 {
		for l := range 32 {
			qs[32*c+l] = k.level(x, 64*c+l, 16) | k.level(x, 64*c+32+l, 16)<<4
		}
	}
}

// quantQ5_K: as Q4_K, the fifth bits in qh (bit 2c of qh[l] for element 64c+l, bit 2c+1
// for element 64c+32+l).
func quantQ5_K(x []float32, y []byte) {
	k := kScales(x, 32)
	k.putHeader(y)
	qh, qs := y[16:48], y[48:176]
	clear(qh)
	for c := range 4 {
		for l := range 32 {
			lo, hi := k.level(x, 64*c+l, 32), k.level(x, 64*c+32+l, 32)
			qs[32*c+l] = lo&0xf | hi&0xf<<4
			qh[l] |= lo>>4<<(2*c) | hi>>4<<(2*c+1)
		}
	}
}

// quantQ6_K gives each sub-block of 16 a positive int8 scale against the super-block's d,
// rounded up so that every element lies within 31 steps of zero (levels -32..31 are
// stored as 0..63).
func quantQ6_K(x []float32, y []byte) {
	var need [16]float32
	var maxNeed float32
	for s := range 16 {
		var amax float32
		for _, v := range x[16*s : 16*s+16] {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		need[s] = amax / 31
		maxNeed = max(maxNeed, need[s])
	}
	d := f16Ceil(maxNeed / 127)
	var q [qk]byte
	for s := range 16 {
		sc := ceilMul(need[s], d, 127)
		y[192+s] = byte(sc)
		step := d * float32(sc)
		for i := 16 * s; i < 16*s+16; i++ {
			q[i] = 32
			if step != 0 {
				q[i] = byte(min(31, max(-32, math.Round(float64(x[i]/step)))) + 32)
			}
		}
	}
	ql, qh := y[0:128], y[128:192]
	for n := range 2 {
		for l := range 32 {
			e := q[128*n+l:]
			ql[64*n+l] = e[0]&0xf | e[64]&0xf<<4
			ql[64*n+l+32] = e[32]&0xf | e[96]&0xf<<4
			qh[32*n+l] = e[0]>>4 | e[32]>>4<<2 | e[64]>>4<<4 | e[96]>>4<<6
		}
	}
	le.PutUint16(y[208:], Float32ToF16(d))
}

// f16Ceil returns the smallest half-representable value >= v (v >= 0, finite).
func f16Ceil(v float32) float32 {
	h := Float32ToF16(v)
	if F16ToFloat32(h) < v {
		h++
	}
	return F16ToFloat32(h)
}

// ceilMul returns the smallest k in 0..top with unit*k >= v (top if none).
func ceilMul(v, unit float32, top int) int {
	if unit == 0 || v <= 0 {
		return 0
	}
	k := min(top, int(math.Ceil(float64(v/unit))))
	for k < top && unit*float32(k) < v {
		k++
	}
	return k
}

// packScalesK4 is the inverse of scaleMinK4.
func packScalesK4(s []byte, sc, m [8]uint8) {
	for j := range 4 {
		s[j] = sc[j]&63 | sc[j+4]>>4<<6
		s[j+4] = m[j]&63 | m[j+4]>>4<<6
		s[j+8] = sc[j+4]&0xf | m[j+4]&0xf<<4
	}
}
