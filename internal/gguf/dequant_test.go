package gguf

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// filled returns n copies of v.
func filled(n int, v float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// compareBits fails for every element whose bits differ (so -0 and +0 differ, and NaNs
// compare by payload).
func compareBits(t *testing.T, name string, want, got []float32) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: %d elements, want %d", name, len(got), len(want))
	}
	bad := 0
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			if bad++; bad <= 8 {
				t.Errorf("%s: element %d = %g (%#08x), want %g (%#08x)", name, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
		}
	}
	if bad > 8 {
		t.Errorf("%s: %d elements differ in all", name, bad)
	}
}

// k4Scales packs, by hand, the 12 scale bytes used by the Q4_K and Q5_K cases:
// sc = [2 3 1 63 5 32 0 7], m = [4 0 0 0 1 16 0 0].
//
//	bytes 0-3:  sc0..sc3 in the low six bits; top two bits: sc4..sc7 >> 4 (0 2 0 0)
//	bytes 4-7:  m0..m3 in the low six bits;   top two bits: m4..m7 >> 4  (0 1 0 0)
//	bytes 8-11: sc4..sc7 & 15 | (m4..m7 & 15) << 4
var k4Scales = []byte{0x02, 0x83, 0x01, 0x3f, 0x04, 0x40, 0x00, 0x00, 0x15, 0x00, 0x00, 0x07}

// TestDequantizeHandChecked decodes blocks whose expected values were worked out by hand
// from the block layouts (each value's derivation is in its comment).
func TestDequantizeHandChecked(t *testing.T) {
	type tc struct {
		typ   Type
		block []byte
		want  []float32
	}
	var cases []tc

	// F32, F16, BF16: one element per block.
	cases = append(cases, tc{F32,
		[]byte{0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0xff},
		[]float32{1, float32(math.Copysign(0, -1)), math.Float32frombits(1), float32(math.Inf(-1))}})
	cases = append(cases, tc{F16,
		[]byte{0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00, 0x00, 0x80, 0x00, 0x7c, 0x55, 0x35, 0x00, 0x04, 0xff, 0x03},
		[]float32{
			1,                              // 0x3c00: exponent 15, mantissa 0
			-2,                             // 0xc000
			65504,                          // 0x7bff: (2-2^-10) * 2^15
			float32(math.Ldexp(1, -24)),    // 0x0001: smallest subnormal
			float32(math.Copysign(0, -1)),  // 0x8000
			float32(math.Inf(1)),           // 0x7c00
			0.333251953125,                 // 0x3555: (1+0x155/1024) * 2^-2
			float32(math.Ldexp(1, -14)),    // 0x0400: smallest normal
			float32(math.Ldexp(1023, -24)), // 0x03ff: largest subnormal
		}})
	cases = append(cases, tc{BF16,
		[]byte{0x80, 0x3f, 0xa0, 0xc0, 0x80, 0x7f, 0x01, 0x00, 0xab, 0x3e},
		[]float32{1, -5, float32(math.Inf(1)), math.Float32frombits(0x00010000), 0.333984375}})

	// Q8_0: d = 0.5 (f16 0x3800); y = q * d.
	{
		b := make([]byte, 34)
		b[0], b[1] = 0x00, 0x38
		b[2+0], b[2+1], b[2+2], b[2+31] = 0x80, 0xff, 0x7f, 3 // -128, -1, 127, 3
		w := filled(32, 0)
		w[0], w[1], w[2], w[31] = -64, -0.5, 63.5, 1.5
		cases = append(cases, tc{Q8_0, b, w})
	}
	// Q4_0: d = -0.25 (f16 0xb400); y[j] = (lo nibble - 8) * d, y[j+16] = (hi nibble - 8) * d.
	{
		b := make([]byte, 18)
		b[0], b[1] = 0x00, 0xb4
		for j := range 16 {
			b[2+j] = 0x88 // both nibbles 8: (8-8) * -0.25 = -0
		}
		b[2+0] = 0xf0  // y[0] = (0-8) * -0.25 = 2, y[16] = (15-8) * -0.25 = -1.75
		b[2+15] = 0x19 // y[15] = (9-8) * -0.25 = -0.25, y[31] = (1-8) * -0.25 = 1.75
		w := filled(32, float32(math.Copysign(0, -1)))
		w[0], w[16], w[15], w[31] = 2, -1.75, -0.25, 1.75
		cases = append(cases, tc{Q4_0, b, w})
	}
	// Q5_0: d = 1 (0x3c00), qh = 0x00020001 (bits 0 and 17); y = (nibble | bit << 4) - 16.
	{
		b := make([]byte, 22)
		b[0], b[1] = 0x00, 0x3c
		b[2], b[3], b[4], b[5] = 0x01, 0x00, 0x02, 0x00
		b[6+0] = 0x21 // y[0] = (1|16)-16 = 1, y[16] = 2-16 = -14
		// qs[1] = 0: y[1] = -16, y[17] = (0|16)-16 = 0 (qh bit 17)
		w := filled(32, -16)
		w[0], w[16], w[17] = 1, -14, 0
		cases = append(cases, tc{Q5_0, b, w})
	}
	// Q4_1: d = 0.5 (0x3800), m = -1 (0xbc00); y = q*d + m.
	{
		b := make([]byte, 20)
		b[0], b[1], b[2], b[3] = 0x00, 0x38, 0x00, 0xbc
		b[4+0] = 0x2f // y[0] = 15*0.5 - 1 = 6.5, y[16] = 2*0.5 - 1 = 0
		w := filled(32, -1)
		w[0], w[16] = 6.5, 0
		cases = append(cases, tc{Q4_1, b, w})
	}
	// Q5_1: d = 2 (0x4000), m = 0.25 (0x3400), qh bits 3 and 31; y = q*d + m.
	{
		b := make([]byte, 24)
		b[0], b[1], b[2], b[3] = 0x00, 0x40, 0x00, 0x34
		b[4], b[7] = 0x08, 0x80
		b[8+3] = 0x10  // y[3] = (0|16)*2 + 0.25 = 32.25, y[19] = 1*2 + 0.25 = 2.25
		b[8+15] = 0xf0 // y[15] = 0.25, y[31] = (15|16)*2 + 0.25 = 62.25
		w := filled(32, 0.25)
		w[3], w[19], w[31] = 32.25, 2.25, 62.25
		cases = append(cases, tc{Q5_1, b, w})
	}
	// Q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d = 1 (0x3c00) at 80,
	// dmin = 0.5 (0x3800) at 82. Sub-block s (16 elements) of half n = s/8, j = s%8/2 takes
	// bits 2j..2j+1 of qs[32n + 16*(s%2) + l]. y = d*sc*q - dmin*m; q = 0 gives -dmin*m.
	{
		b := make([]byte, 84)
		for i := range 16 {
			b[i] = 0x21 // sc 1, m 2: default -1
		}
		b[0] = 0x13 // sb0: sc 3, m 1: default -0.5
		b[9] = 0xf4 // sb9: sc 4, m 15: default -7.5
		b[80], b[81], b[82], b[83] = 0x00, 0x3c, 0x00, 0x38
		qs := b[16:80]
		qs[0] = 0xe7 // bits 11|10|01|11: e0 (sb0, j0) = 3*3 - 0.5 = 8.5; e32 (sb2, j1) = 1*1 - 1 = 0;
		//              e64 (sb4, j2) = 2 - 1 = 1; e96 (sb6, j3) = 3 - 1 = 2
		qs[63] = 0x02 // e159 (sb9: n1, j0, second half, l15) = 4*2 - 7.5 = 0.5
		w := filled(256, -1)
		for i := range 16 {
			w[i], w[9*16+i] = -0.5, -7.5
		}
		w[0], w[32], w[64], w[96], w[159] = 8.5, 0, 1, 2, 0.5
		cases = append(cases, tc{Q2_K, b, w})
	}
	// Q3_K: hmask[32], qs[64], scales[12] at 96, d = 0.5 (0x3800) at 108. Scale s =
	// (low nibble: byte s for s < 8, high nibble of byte s-8 otherwise) | (bits 2*(s/4) of
	// byte 8+s%4) << 4, minus 32. Bytes 0 = 0x21 and 8 = 0x82 give s0 = 1|2<<4 - 32 = 1,
	// s8 = 2 - 32 = -30, s12 = 0|2<<4 - 32 = 0, every other -32. The two-bit value loses 4
	// unless its hmask bit (bit 4n+j of hmask[16*(s%2) + l]) is set; all clear gives
	// y = 0.5*sc*-4 = -2*sc: -2 (s0), 60 (s8), -0 (s12: 0 * -4), 64 elsewhere.
	{
		b := make([]byte, 110)
		hm, qs, sc := b[0:32], b[32:96], b[96:108]
		sc[0], sc[8] = 0x21, 0x82
		b[108], b[109] = 0x00, 0x38
		qs[0], hm[0] = 0x03, 0x11 // e0 (s0): q 3, bit 0 set: 0.5*1*3 = 1.5;
		//                           e128 (s8: n1, j0): q = qs[32]&3 = 0, bit 4 set: 0.5*-30*0 = -0
		qs[1] = 0x02                // e1 (s0): 2-4 = -2: 0.5*1*-2 = -1
		qs[51], hm[19] = 0x01, 0x10 // e147 (s9: n1, j0, second, l3): q 1, bit 4 set: 0.5*-32*1 = -16
		qs[48], hm[16] = 0xc0, 0x80 // e240 (s15: n1, j3, second, l0): q 3, bit 7 set: 0.5*-32*3 = -48
		w := filled(256, 64)
		negZero := float32(math.Copysign(0, -1))
		for i := range 16 {
			w[i], w[8*16+i], w[12*16+i] = -2, 60, negZero
		}
		w[0], w[128], w[1], w[147], w[240] = 1.5, negZero, -1, -16, -48
		cases = append(cases, tc{Q3_K, b, w})
	}
	// Q4_K: d = 0.5 (0x3800), dmin = 0.25 (0x3400), scales k4Scales. Sub-block s holds
	// elements 32s..32s+31; qs byte 32c+l has element 64c+l in its low nibble and
	// 64c+32+l in its high one. y = d*sc*q - dmin*m. With q = 0 a sub-block gives
	// -dmin*m: -1, 0, 0, 0, -0.25, -4, 0, 0.
	q4kDefaults := []float32{-1, 0, 0, 0, -0.25, -4, 0, 0}
	{
		b := make([]byte, 144)
		b[0], b[1], b[2], b[3] = 0x00, 0x38, 0x00, 0x34
		copy(b[4:], k4Scales)
		qs := b[16:]
		qs[0] = 0x3a   // e0 (sb0): 0.5*2*10 - 0.25*4 = 9;  e32 (sb1): 0.5*3*3 - 0 = 4.5
		qs[69] = 0xf1  // e133 (sb4): 0.5*5*1 - 0.25*1 = 2.25;  e165 (sb5): 0.5*32*15 - 0.25*16 = 236
		qs[127] = 0x2f // e223 (sb6): 0.5*0*15 - 0 = 0;  e255 (sb7): 0.5*7*2 - 0 = 7
		w := make([]float32, 256)
		for i := range w {
			w[i] = q4kDefaults[i/32]
		}
		w[0], w[32], w[133], w[165], w[223], w[255] = 9, 4.5, 2.25, 236, 0, 7
		cases = append(cases, tc{Q4_K, b, w})
	}
	// Q5_K: as Q4_K, with qh[32] at byte 16 and qs at byte 48; bit 2c of qh[l] adds 16 to
	// element 64c+l, bit 2c+1 to element 64c+32+l.
	{
		b := make([]byte, 176)
		b[0], b[1], b[2], b[3] = 0x00, 0x38, 0x00, 0x34
		copy(b[4:], k4Scales)
		qh, qs := b[16:48], b[48:]
		qs[0] = 0x3a
		qh[0] = 0x01   // e0: 0.5*2*(10+16) - 1 = 25;  e32 unchanged: 4.5
		qh[1] = 0x02   // e33 (sb1): 0.5*3*(0+16) - 0 = 24
		qs[69] = 0xf1  // e133: 2.25 (no high bit)
		qh[5] = 0x20   // bit 5 = 2*2+1: e165: 0.5*32*(15+16) - 4 = 492
		qs[127] = 0x2f // e223 (sb6): 0
		qh[31] = 0x80  // bit 7 = 2*3+1: e255: 0.5*7*(2+16) = 63
		w := make([]float32, 256)
		for i := range w {
			w[i] = q4kDefaults[i/32]
		}
		w[0], w[32], w[33], w[133], w[165], w[223], w[255] = 25, 4.5, 24, 2.25, 492, 0, 63
		cases = append(cases, tc{Q5_K, b, w})
	}
	// Q6_K: ql[128], qh[64], scales[16] (int8), d = 0.5 at byte 208. Element e uses scale
	// e/16; y = d*sc*(q-32). With all bits zero q-32 = -32, so y = -16*sc.
	{
		sc := []int8{1, 2, -2, 1, 3, 1, 4, 1, -1, 1, 1, 1, 1, 1, 1, 127}
		b := make([]byte, 210)
		for i, s := range sc {
			b[192+i] = byte(s)
		}
		b[208], b[209] = 0x00, 0x38
		ql, qh := b[0:128], b[128:192]
		ql[0] = 0x5f // e0: low nibble 15 | (qh[0]&3)<<4 = 15 -> -17 * 0.5*1 = -8.5
		qh[0] = 0xe4 // e64: ql[0]>>4 = 5 | ((0xe4>>4)&3 = 2)<<4 = 37 -> 5 * 0.5*3 = 7.5
		//                e32: ql[32]&15 = 0 | ((0xe4>>2)&3 = 1)<<4 = 16 -> -16 * 0.5*-2 = 16
		//                e96: ql[32]>>4 = 0 | (0xe4>>6 = 3)<<4 = 48 -> 16 * 0.5*4 = 32
		ql[95] = 0x07 // e159 (second half, l=31): 7 | (qh[63]&3 = 3)<<4 = 55 -> 23 * 0.5*1 = 11.5
		qh[63] = 0x03
		ql[127] = 0xf0 // e255: ql[127]>>4 = 15 | (qh[63]>>6 = 0)<<4 = 15 -> -17 * 0.5*127 = -1079.5
		w := make([]float32, 256)
		for i := range w {
			w[i] = -16 * float32(sc[i/16])
		}
		w[0], w[64], w[32], w[96], w[159], w[255] = -8.5, 7.5, 16, 32, 11.5, -1079.5
		cases = append(cases, tc{Q6_K, b, w})
	}

	for _, c := range cases {
		t.Run(c.typ.String(), func(t *testing.T) {
			got := make([]float32, len(c.want))
			if err := Dequantize(c.typ, c.block, got); err != nil {
				t.Fatal(err)
			}
			compareBits(t, c.typ.String(), c.want, got)
			// Two blocks in a row decode independently.
			two := append(append([]byte(nil), c.block...), c.block...)
			got2 := make([]float32, 2*len(c.want))
			if err := Dequantize(c.typ, two, got2); err != nil {
				t.Fatal(err)
			}
			compareBits(t, c.typ.String()+" second block", c.want, got2[len(c.want):])
		})
	}
}

func TestDequantizeErrors(t *testing.T) {
	cases := []struct {
		typ  Type
		src  int
		dst  int
		want string
	}{
		{Q8_0, 34, 31, "31 elements not a multiple of the block size 32"},
		{Q4_K, 143, 256, "256 elements need 144 bytes, have 143"},
		{Type(4), 100, 1, "unknown ggml type type(4)"},
		{IQ2_XXS, 66, 256, "type IQ2_XXS not supported"},
	}
	for _, c := range cases {
		err := Dequantize(c.typ, make([]byte, c.src), make([]float32, c.dst))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Dequantize(%s, %d bytes, %d elements) = %v, want error containing %q", c.typ, c.src, c.dst, err, c.want)
		}
	}
}

func TestTypeSizes(t *testing.T) {
	// Block sizes and bytes per block from ggml's block structs (ggml-common.h).
	want := map[Type][2]uint64{
		F32: {1, 4}, F16: {1, 2}, BF16: {1, 2}, Q4_0: {32, 18}, Q4_1: {32, 20}, Q5_0: {32, 22},
		Q5_1: {32, 24}, Q8_0: {32, 34}, Q8_1: {32, 36}, Q2_K: {256, 84}, Q3_K: {256, 110},
		Q4_K: {256, 144}, Q5_K: {256, 176}, Q6_K: {256, 210}, Q8_K: {256, 292},
		IQ2_XXS: {256, 66}, IQ2_XS: {256, 74}, IQ3_XXS: {256, 98}, IQ1_S: {256, 50},
		IQ4_NL: {32, 18}, IQ3_S: {256, 110}, IQ2_S: {256, 82}, IQ4_XS: {256, 136},
		I8: {1, 1}, I16: {1, 2}, I32: {1, 4}, I64: {1, 8}, F64: {1, 8}, IQ1_M: {256, 56},
		TQ1_0: {256, 54}, TQ2_0: {256, 66}, MXFP4: {32, 17}, NVFP4: {64, 36}, Q1_0: {128, 18},
		Q2_0: {64, 18},
	}
	for typ, bs := range want {
		if typ.BlockSize() != bs[0] || typ.TypeSize() != bs[1] {
			t.Errorf("%s: block %d, size %d; want %d, %d", typ, typ.BlockSize(), typ.TypeSize(), bs[0], bs[1])
		}
	}
	for id := range Type(64) {
		if _, listed := want[id]; listed != id.Known() {
			t.Errorf("%s: Known() = %v, want %v", id, id.Known(), listed)
		}
	}
	if n, err := Q4_K.RowBytes(2048); err != nil || n != 8*144 {
		t.Errorf("Q4_K.RowBytes(2048) = %d, %v; want %d", n, err, 8*144)
	}
	if _, err := Q4_K.RowBytes(100); err == nil {
		t.Errorf("Q4_K.RowBytes(100): no error for a partial block")
	}
	if s := fmt.Sprint(Q6_K, Type(99)); s != "Q6_K type(99)" {
		t.Errorf("String: %q", s)
	}
}

// TestDequantizeNaNsCanonical: blocks whose scales are infinite or NaN make NaNs whose
// sign and payload would depend on the CPU; they all come out as 0x7fc00000.
func TestDequantizeNaNsCanonical(t *testing.T) {
	for typ, c := range blockCodecs {
		for _, scale := range []uint16{0x7c00, 0xfc00, 0xfe01} { // +inf, -inf, a negative NaN
			x := make([]byte, typ.TypeSize())
			for i := range x {
				x[i] = byte(i * 37) // mixed levels: some zero products, some not
			}
			for _, o := range c.scales {
				le.PutUint16(x[o:], scale)
			}
			y := make([]float32, typ.BlockSize())
			if err := Dequantize(typ, x, y); err != nil {
				t.Fatal(err)
			}
			nans := 0
			for i, v := range y {
				if v != v {
					nans++
					if b := math.Float32bits(v); b != 0x7fc00000 {
						t.Errorf("%s scale %#04x: element %d is NaN %#08x, want 0x7fc00000", typ, scale, i, b)
					}
				}
			}
			if nans == 0 && scale == 0xfe01 {
				t.Errorf("%s: a NaN scale made no NaN", typ)
			}
		}
	}
}
