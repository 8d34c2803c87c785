package gguf

import (
	"fmt"
	"math"
)

// Dequantize converts len(dst) elements of type t from src to float32, bit-exact with
// ggml's reference dequantizers (dequantize_row_*). Types: F32, F16, BF16, Q4_0, Q4_1,
// Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (see Type.Supported). len(dst) must be a
// whole number of blocks and src must hold at least that many blocks.
//
// Products are rounded to float32 before any addition (float32(a*b) - c), so that no
// architecture fuses them into one FMA and the bits are the same everywhere. The one
// departure from ggml: a NaN computed from an infinite or NaN block scale, whose sign and
// payload follow the hardware in ggml, is always 0x7fc00000 here.
func Dequantize(t Type, src []byte, dst []float32) error {
	ti, ok := t.info()
	if !ok {
		return fmt.Errorf("gguf: dequantize: unknown ggml type %s", t)
	}
	n := uint64(len(dst))
	if n%ti.block != 0 {
		return fmt.Errorf("gguf: dequantize %s: %d elements not a multiple of the block size %d", t, n, ti.block)
	}
	blocks := n / ti.block
	if need := blocks * ti.size; uint64(len(src)) < need {
		return fmt.Errorf("gguf: dequantize %s: %d elements need %d bytes, have %d", t, n, need, len(src))
	}
	src = src[:blocks*ti.size] // lets the compiler drop bounds checks below
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
		return nil
	case F16:
		for i := range dst {
			dst[i] = f16Table[le.Uint16(src[2*i:])]
		}
		return nil
	case BF16:
		for i := range dst {
			dst[i] = BF16ToFloat32(le.Uint16(src[2*i:]))
		}
		return nil
	}
	c, ok := blockCodecs[t]
	if !ok {
		return fmt.Errorf("gguf: dequantize: type %s not supported", t)
	}
	bs, es := int(ti.size), int(ti.block)
	for i := range int(blocks) {
		x, y := src[i*bs:(i+1)*bs], dst[i*es:(i+1)*es]
		c.decode(x, y)
		for _, o := range c.scales {
			if le.Uint16(x[o:])&0x7c00 == 0x7c00 {
				canonicalNaNs(y)
				break
			}
		}
	}
	return nil
}

// blockCodec decodes one block of a quantized type (len(x) is the type size, len(y) the
// block size); scales are the byte offsets of the block's half-precision scales.
type blockCodec struct {
	decode func(x []byte, y []float32)
	scales []int
}

var blockCodecs = map[Type]blockCodec{
	Q8_0: {dequantQ8_0, []int{0}},
	Q4_0: {dequantQ4_0, []int{0}},
	Q4_1: {dequantQ4_1, []int{0, 2}},
	Q5_0: {dequantQ5_0, []int{0}},
	Q5_1: {dequantQ5_1, []int{0, 2}},
	Q2_K: {dequantQ2_K, []int{80, 82}},
	Q3_K: {dequantQ3_K, []int{108}},
	Q4_K: {dequantQ4_K, []int{0, 2}},
	Q5_K: {dequantQ5_K, []int{0, 2}},
	Q6_K: {dequantQ6_K, []int{208}},
}

// canonicalNaNs rewrites every NaN in y as 0x7fc00000. Only a block whose scale is
// infinite or NaN makes NaNs (inf*0, inf-inf, NaN*q), and their sign and payload differ
// between amd64 and arm64; rewriting them keeps every output bit the same on both.
func canonicalNaNs(y []float32) {
	for i, v := range y {
		if v != v {
			y[i] = math.Float32frombits(0x7fc00000)
		}
	}
}

// Supported reports whether Dequantize (and so File.Float32) handles t.
func (t Type) Supported() bool {
	_, ok := blockCodecs[t]
	return ok || t == F32 || t == F16 || t == BF16
}

func half(x []byte) float32 { return f16Table[le.Uint16(x)] }

// Q8_0: d (f16), qs[32] (int8); y = d*q.
func dequantQ8_0(x []byte, y []float32) {
	d := half(x)
	qs := x[2:34]
	y = y[:32]
	for j, q := range qs {
		y[j] = float32(int8(q)) * d
	}
}

// Q4_0: d (f16), qs[16]: element j in the low nibble of qs[j], element j+16 in the high
// nibble; y = d*(q-8).
func dequantQ4_0(x []byte, y []float32) {
	d := half(x)
	qs := x[2:18]
	y = y[:32]
	for j, q := range qs {
		y[j] = float32(int(q&0xf)-8) * d
		y[j+16] = float32(int(q>>4)-8) * d
	}
}

// Q5_0: d (f16), qh (uint32: bit j is the fifth bit of element j), qs[16] as Q4_0;
// y = d*(q-16).
func dequantQ5_0(x []byte, y []float32) {
	d := half(x)
	qh := le.Uint32(x[2:6])
	qs := x[6:22]
	y = y[:32]
	for j, q := range qs {
		lo := uint32(q&0xf) | (qh>>j&1)<<4
		hi := uint32(q>>4) | (qh>>(j+16)&1)<<4
		y[j] = float32(int(lo)-16) * d
		y[j+16] = float32(int(hi)-16) * d
	}
}

// Q4_1: d, m (f16), qs[16] as Q4_0; y = q*d + m.
func dequantQ4_1(x []byte, y []float32) {
	d, m := half(x), half(x[2:])
	qs := x[4:20]
	y = y[:32]
	for j, q := range qs {
		y[j] = float32(float32(q&0xf)*d) + m
		y[j+16] = float32(float32(q>>4)*d) + m
	}
}

// Q5_1: d, m (f16), qh (uint32), qs[16] as Q5_0; y = q*d + m.
func dequantQ5_1(x []byte, y []float32) {
	d, m := half(x), half(x[2:])
	qh := le.Uint32(x[4:8])
	qs := x[8:24]
	y = y[:32]
	for j, q := range qs {
		lo := uint32(q&0xf) | (qh>>j&1)<<4
		hi := uint32(q>>4) | (qh>>(j+16)&1)<<4
		y[j] = float32(float32(lo)*d) + m
		y[j+16] = float32(float32(hi)*d) + m
	}
}

// Q2_K: scales[16] (scale in the low nibble, min in the high), qs[64], d, dmin (f16).
// Sixteen sub-blocks of 16: element 128n+32j+l (l < 16) is bits 2j..2j+1 of qs[32n+l]
// with scale byte 8n+2j; element 128n+32j+16+l is those bits of qs[32n+16+l] with byte
// 8n+2j+1. y = d*sc*q - dmin*m.
func dequantQ2_K(x []byte, y []float32) {
	scales, qs := x[0:16], x[16:80]
	d, dmin := half(x[80:]), half(x[82:])
	y = y[:qk]
	for s := range 16 {
		dl, ml := d*float32(scales[s]&0xf), dmin*float32(scales[s]>>4)
		n, j, second := s/8, s%8/2, s%2
		q := qs[32*n+16*second : 32*n+16*second+16]
		out := y[16*s : 16*s+16]
		for l, b := range q {
			out[l] = float32(dl*float32(b>>(2*j)&3)) - ml
		}
	}
}

// Q3_K: hmask[32], qs[64], scales[12], d (f16). Sixteen sub-blocks of 16 laid out as in
// Q2_K, with 6-bit scales stored minus 32: scale s has its low four bits in byte s (s < 8,
// low nibble) or byte s-8 (s >= 8, high nibble), and its top two bits in byte 8+s%4 at bit
// 2*(s/4). An element whose hmask bit (bit 4n+j of hmask[l] or hmask[16+l]) is clear has 4
// subtracted from its two-bit value. y = d*(sc-32)*(q - 4*!h).
func dequantQ3_K(x []byte, y []float32) {
	hmask, qs, sb := x[0:32], x[32:96], x[96:108]
	d := half(x[108:])
	y = y[:qk]
	for s := range 16 {
		lo := sb[s%8] & 0xf
		if s >= 8 {
			lo = sb[s%8] >> 4
		}
		sc := int(lo|(sb[8+s%4]>>(2*(s/4))&3)<<4) - 32
		dl := d * float32(sc)
		n, j, second := s/8, s%8/2, s%2
		q := qs[32*n+16*second : 32*n+16*second+16]
		hm := hmask[16*second : 16*second+16]
		bit := byte(1) << (4*n + j)
		out := y[16*s : 16*s+16]
		for l, b := range q {
			v := int(b >> (2 * j) & 3)
			if hm[l]&bit == 0 {
				v -= 4
			}
			out[l] = dl * float32(v)
		}
	}
}

// scaleMinK4 unpacks the 6-bit scale and min of sub-block j (0..7) from a k-quant's 12
// scale bytes: sub-blocks 0-3 in the low six bits of bytes 0-3 (scales) and 4-7 (mins);
// sub-blocks 4-7 in the nibbles of bytes 8-11 plus the top two bits of bytes 0-7.
func scaleMinK4(j int, s []byte) (sc, m uint8) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&0xf | s[j-4]>>6<<4, s[j+4]>>4 | s[j]>>6<<4
}

// Q4_K: d, dmin (f16), scales[12], qs[128]. Eight sub-blocks of 32 with 6-bit scale and
// min; each 64 elements share 32 bytes of qs (low nibbles first); y = d*sc*q - dmin*m.
func dequantQ4_K(x []byte, y []float32) {
	d, dmin := half(x), half(x[2:])
	scales := x[4:16]
	qs := x[16:144]
	y = y[:qk]
	for c := range 4 {
		sc1, m1 := scaleMinK4(2*c, scales)
		sc2, m2 := scaleMinK4(2*c+1, scales)
		d1, min1 := d*float32(sc1), dmin*float32(m1)
		d2, min2 := d*float32(sc2), dmin*float32(m2)
		q := qs[32*c : 32*c+32]
		out := y[64*c : 64*c+64]
		for l, b := range q {
			out[l] = float32(d1*float32(b&0xf)) - min1
			out[l+32] = float32(d2*float32(b>>4)) - min2
		}
	}
}

// Q5_K: as Q4_K with qh[32] after the scales: bit 2c of qh[l] is the fifth bit of element
// 64c+l, bit 2c+1 that of element 64c+32+l.
func dequantQ5_K(x []byte, y []float32) {
	d, dmin := half(x), half(x[2:])
	scales := x[4:16]
	qh := x[16:48]
	qs := x[48:176]
	y = y[:qk]
	for c := range 4 {
		sc1, m1 := scaleMinK4(2*c, scales)
		sc2, m2 := scaleMinK4(2*c+1, scales)
		d1, min1 := d*float32(sc1), dmin*float32(m1)
		d2, min2 := d*float32(sc2), dmin*float32(m2)
		q := qs[32*c : 32*c+32]
		out := y[64*c : 64*c+64]
		for l, b := range q {
			h := qh[l] >> (2 * c)
			out[l] = float32(d1*float32(b&0xf|h&1<<4)) - min1
			out[l+32] = float32(d2*float32(b>>4|h>>1&1<<4)) - min2
		}
	}
}

// Q6_K: ql[128] (low nibbles), qh[64] (high two bits), scales[16] (int8), d (f16). Each
// half of 128 elements uses 64 bytes of ql, 32 of qh and 8 scales (one per 16 elements);
// y = d*sc*(q-32).
func dequantQ6_K(x []byte, y []float32) {
	ql := x[0:128]
	qh := x[128:192]
	sc := x[192:208]
	d := half(x[208:])
	y = y[:qk]
	for n := range 2 {
		l4, h4, s4, out := ql[64*n:64*n+64], qh[32*n:32*n+32], sc[8*n:8*n+8], y[128*n:128*n+128]
		for l := range 32 {
			is := l / 16
			h := h4[l]
			q1 := int(l4[l]&0xf|(h&3)<<4) - 32
			q2 := int(l4[l+32]&0xf|(h>>2&3)<<4) - 32
			q3 := int(l4[l]>>4|(h>>4&3)<<4) - 32
			q4 := int(l4[l+32]>>4|(h>>6&3)<<4) - 32
			out[l] = d * float32(int8(s4[is])) * float32(q1)
			out[l+32] = d * float32(int8(s4[is+2])) * float32(q2)
			out[l+64] = d * float32(int8(s4[is+4])) * float32(q3)
			out[l+96] = d * float32(int8(s4[is+6])) * float32(q4)
		}
	}
}
