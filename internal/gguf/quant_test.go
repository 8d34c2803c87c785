package gguf

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestHalfExhaustive(t *testing.T) {
	for h := range 1 << 16 {
		exp, mant := h>>10&0x1f, h&0x3ff
		// Independent definition: value = (-1)^s * 2^(e-15) * (1 + m/1024), subnormals
		// 2^-14 * m/1024.
		var want float64
		switch {
		case exp == 0x1f && mant != 0:
			want := uint32(h&0x8000)<<16 | 0x7fc00000 | uint32(mant)<<13 // payload kept, made quiet
			if got := math.Float32bits(F16ToFloat32(uint16(h))); got != want {
				t.Errorf("F16ToFloat32(%#04x) = %#08x, want %#08x", h, got, want)
			}
			if got := Float32ToF16(F16ToFloat32(uint16(h))); got&0x7fff != 0x7e00 || got&0x8000 != uint16(h)&0x8000 {
				t.Errorf("%#04x: NaN round trip gives %#04x, want quiet NaN 0x7e00 with the sign kept", h, got)
			}
			continue
		case exp == 0x1f:
			want = math.Inf(1)
		case exp == 0:
			want = math.Ldexp(float64(mant), -24)
		default:
			want = math.Ldexp(1+float64(mant)/1024, exp-15)
		}
		if h&0x8000 != 0 {
			want = -want
		}
		got := F16ToFloat32(uint16(h))
		if float64(got) != want || math.Signbit(float64(got)) != (h&0x8000 != 0) {
			t.Fatalf("F16ToFloat32(%#04x) = %g, want %g", h, got, want)
		}
		if back := Float32ToF16(got); back != uint16(h) {
			t.Fatalf("Float32ToF16(%g) = %#04x, want %#04x", got, back, h)
		}
	}
}

func TestFloat32ToF16Rounding(t *testing.T) {
	cases := []struct {
		f    float64
		want uint16
	}{
		{1 + math.Ldexp(1, -11), 0x3c00},   // tie between 1 and 1+2^-10: even (1)
		{1 + 3*math.Ldexp(1, -11), 0x3c02}, // tie between 1+2^-10 and 1+2^-9: even
		{1 + math.Ldexp(1, -11) + math.Ldexp(1, -20), 0x3c01},
		{65519, 0x7bff},                   // below the tie with 65536: 65504
		{65520, 0x7c00},                   // the tie rounds to even: infinity
		{1e10, 0x7c00},                    // overflow
		{-1e10, 0xfc00},                   //
		{math.Ldexp(1, -25), 0x0000},      // half the smallest subnormal: even (0)
		{math.Ldexp(3, -25), 0x0002},      // 1.5 units: even (2)
		{math.Ldexp(5, -26), 0x0001},      // 1.25 units
		{math.Ldexp(1, -26), 0x0000},      // quarter unit
		{math.Ldexp(1023.5, -24), 0x0400}, // largest subnormal + half: rounds up to the smallest normal
		{-math.Ldexp(1, -30), 0x8000},     // negative underflow keeps the sign
	}
	for _, c := range cases {
		if got := Float32ToF16(float32(c.f)); got != c.want {
			t.Errorf("Float32ToF16(%g) = %#04x, want %#04x", c.f, got, c.want)
		}
	}
	// Property: the result is the nearest half (ties to even) for random floats.
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		f := math.Float32frombits(r.Uint32())
		if math.IsNaN(float64(f)) || math.Abs(float64(f)) >= 65520 {
			continue
		}
		h := Float32ToF16(f)
		d := math.Abs(float64(F16ToFloat32(h)) - float64(f))
		for _, n := range []uint16{h - 1, h + 1} {
			if n&0x7c00 == 0x7c00 || (n^h)&0x8000 != 0 && n&0x7fff != 0 {
				continue
			}
			dn := math.Abs(float64(F16ToFloat32(n)) - float64(f))
			if dn < d || dn == d && h&1 == 1 {
				t.Fatalf("Float32ToF16(%g) = %#04x, but %#04x is nearer (or the even tie)", f, h, n)
			}
		}
	}
}

func TestBF16(t *testing.T) {
	cases := []struct {
		f    uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie 1 + 2^-8: even
		{0x3f818000, 0x3f82}, // tie 1 + 3*2^-8: even
		{0x3f808001, 0x3f81}, // just above the tie
		{0x7f7fffff, 0x7f80}, // max float rounds to infinity
		{0x7fc00001, 0x7fc0}, // quiet NaN
		{0x7f800001, 0x7fc0}, // signalling NaN is made quiet
		{0xff800000, 0xff80}, // -inf
		{0x00010000, 0x0001}, // subnormal kept
	}
	for _, c := range cases {
		if got := Float32ToBF16(math.Float32frombits(c.f)); got != c.want {
			t.Errorf("Float32ToBF16(%#08x) = %#04x, want %#04x", c.f, got, c.want)
		}
	}
	for h := range 1 << 16 {
		if h&0x7f80 == 0x7f80 && h&0x7f != 0 {
			continue // NaN
		}
		if back := Float32ToBF16(BF16ToFloat32(uint16(h))); back != uint16(h) {
			t.Fatalf("bf16 %#04x round trip gives %#04x", h, back)
		}
	}
}

// testVectors returns named inputs that stress a quantizer: smooth, noisy, one-signed,
// constant, zero, with an outlier, with a wide dynamic range.
func testVectors(n int) map[string][]float32 {
	r := rand.New(rand.NewPCG(7, 11))
	gen := func(f func(i int) float64) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(f(i))
		}
		return out
	}
	return map[string][]float32{
		"normal":   gen(func(int) float64 { return r.NormFloat64() }),
		"sine":     gen(func(i int) float64 { return math.Sin(float64(i) / 7) }),
		"positive": gen(func(int) float64 { return 3 + r.Float64() }),
		"negative": gen(func(int) float64 { return -0.01 - 0.02*r.Float64() }),
		"constant": gen(func(int) float64 { return 0.75 }),
		"zero":     gen(func(int) float64 { return 0 }),
		"outlier":  gen(func(i int) float64 { return map[bool]float64{true: 500, false: r.NormFloat64() * 1e-3}[i%97 == 5] }),
		"wide":     gen(func(i int) float64 { return r.NormFloat64() * math.Pow(10, float64(i%256/32-4)) }),
		"tiny":     gen(func(int) float64 { return r.NormFloat64() * 1e-6 }),
	}
}

func TestQuantizeQ8_0RoundTrip(t *testing.T) {
	for name, x := range testVectors(1024) {
		q := make([]byte, len(x)/32*34)
		if err := QuantizeQ8_0(x, q); err != nil {
			t.Fatal(err)
		}
		y := make([]float32, len(x))
		if err := Dequantize(Q8_0, q, y); err != nil {
			t.Fatal(err)
		}
		for b := range len(x) / 32 {
			d := float64(half(q[b*34:]))
			var amax float64
			for _, v := range x[b*32 : b*32+32] {
				amax = math.Max(amax, math.Abs(float64(v)))
			}
			// d is amax/127 rounded to half precision (relative error <= 2^-11, or the
			// subnormal spacing 2^-24).
			if math.Abs(d-amax/127) > amax/127*math.Ldexp(1, -11)+math.Ldexp(1, -25) {
				t.Errorf("%s block %d: d = %g, want about %g", name, b, d, amax/127)
			}
			// Each element is within half a step (plus the scale's rounding, which moves the
			// extreme by at most 127*|d - amax/127|).
			bound := d/2 + 127*math.Abs(d-amax/127) + 1e-30
			for i := b * 32; i < b*32+32; i++ {
				if e := math.Abs(float64(y[i]) - float64(x[i])); e > bound {
					t.Fatalf("%s element %d: %g -> %g, error %g > bound %g", name, i, x[i], y[i], e, bound)
				}
			}
		}
	}
}

func TestQuantizeKRoundTrip(t *testing.T) {
	for _, c := range []struct {
		typ    Type
		levels int
		maxRel float64 // relative RMS error bound on smooth data
	}{{Q4_K, 16, 0.1}, {Q5_K, 32, 0.05}} {
		for name, x := range testVectors(2048) {
			bs := int(c.typ.TypeSize())
			q := make([]byte, len(x)/256*bs)
			if err := Quantize(c.typ, x, q); err != nil {
				t.Fatal(err)
			}
			y := make([]float32, len(x))
			if err := Dequantize(c.typ, q, y); err != nil {
				t.Fatal(err)
			}
			var sse, ssx float64
			for b := range len(x) / 256 {
				blk := q[b*bs:]
				d, dmin := float64(half(blk)), float64(half(blk[2:]))
				for s := range 8 {
					sc, m := scaleMinK4(s, blk[4:16])
					step, off := d*float64(sc), dmin*float64(m)
					top := step*float64(c.levels-1) - off
					sub := x[b*256+32*s : b*256+32*s+32]
					lo, hi := math.Inf(1), math.Inf(-1)
					for _, v := range sub {
						lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
					}
					// The format represents [-dmin*m, step*(levels-1) - dmin*m]: it must
					// cover the sub-block, and each element be within half a step.
					slack := 1e-6 * math.Max(math.Abs(lo), math.Abs(hi))
					if -off > math.Min(lo, 0)+slack || top < hi-slack {
						t.Errorf("%s %s block %d sub-block %d: range [%g, %g] does not cover [%g, %g]", c.typ, name, b, s, -off, top, lo, hi)
					}
					bound := step/2*(1+1e-5) + slack + 1e-30
					for i, v := range sub {
						got := y[b*256+32*s+i]
						e := math.Abs(float64(got) - float64(v))
						if e > bound {
							t.Fatalf("%s %s element %d: %g -> %g, error %g > half step %g", c.typ, name, b*256+32*s+i, v, got, e, bound)
						}
						sse += e * e
						ssx += float64(v) * float64(v)
					}
				}
			}
			if name == "normal" || name == "sine" {
				if rel := math.Sqrt(sse / ssx); rel > c.maxRel {
					t.Errorf("%s %s: relative RMS error %.4f, want < %g", c.typ, name, rel, c.maxRel)
				}
			}
		}
	}
}

func TestQuantizeQ6_KRoundTrip(t *testing.T) {
	for name, x := range testVectors(1024) {
		q := make([]byte, len(x)/256*210)
		if err := Quantize(Q6_K, x, q); err != nil {
			t.Fatal(err)
		}
		y := make([]float32, len(x))
		if err := Dequantize(Q6_K, q, y); err != nil {
			t.Fatal(err)
		}
		for b := range len(x) / 256 {
			blk := q[b*210:]
			d := float64(half(blk[208:]))
			for s := range 16 {
				step := d * float64(int8(blk[192+s]))
				for i := b*256 + 16*s; i < b*256+16*s+16; i++ {
					// Levels reach 31 steps above and 32 below zero; the scale was rounded
					// up so that |x| <= 31 steps, hence no clipping.
					if math.Abs(float64(x[i])) > 31*step*(1+1e-6)+1e-30 {
						t.Fatalf("%s element %d: %g beyond 31 steps of %g", name, i, x[i], step)
					}
					if e := math.Abs(float64(y[i]) - float64(x[i])); e > step/2*(1+1e-5)+1e-30 {
						t.Fatalf("%s element %d: %g -> %g, error %g > half step %g", name, i, x[i], y[i], e, step/2)
					}
				}
			}
		}
	}
}

// TestQuantize_0RoundTrip checks Q4_0 and Q5_0 as ggml's reference quantizer builds them:
// d = max/-(levels/2) for the signed extreme, which lands on level 0 exactly, while the
// opposite extreme would need level `levels` and is clipped to levels-1 (an error of up to
// one step); everything else is within half a step, plus the error of storing d in half
// precision times the level.
func TestQuantize_0RoundTrip(t *testing.T) {
	for _, c := range []struct {
		typ    Type
		levels float64
	}{{Q4_0, 16}, {Q5_0, 32}} {
		bs := int(c.typ.TypeSize())
		for name, x := range testVectors(1024) {
			q := make([]byte, len(x)/32*bs)
			if err := Quantize(c.typ, x, q); err != nil {
				t.Fatal(err)
			}
			y := make([]float32, len(x))
			if err := Dequantize(c.typ, q, y); err != nil {
				t.Fatal(err)
			}
			for b := range len(x) / 32 {
				d := math.Abs(float64(half(q[b*bs:])))
				mx := float64(signedMax(x[b*32 : b*32+32]))
				// Half precision rounds d by up to 2^-11 relative, or 2^-25 absolute where it
				// is subnormal; each level multiplies that error.
				dErr := math.Max(d*math.Ldexp(1, -11), math.Ldexp(1, -25))
				for i := b * 32; i < b*32+32; i++ {
					bound := d/2 + (c.levels/2+1)*dErr + 1e-30
					if v := float64(x[i]); v*mx < 0 && math.Abs(v) > (c.levels/2-0.5)*d {
						bound += d / 2 // clipped at the top level
					}
					if e := math.Abs(float64(y[i]) - float64(x[i])); e > bound {
						t.Fatalf("%s %s element %d: %g -> %g, error %g > %g (d %g)", c.typ, name, i, x[i], y[i], e, bound, d)
					}
				}
				// The signed extreme itself is reproduced up to d's rounding.
				if j := indexOfMax(x[b*32 : b*32+32]); math.Abs(float64(y[b*32+j])-mx) > c.levels/2*dErr+1e-30 {
					t.Errorf("%s %s block %d: extreme %g -> %g", c.typ, name, b, mx, y[b*32+j])
				}
			}
		}
	}
}

func indexOfMax(x []float32) int {
	best := 0
	for i, v := range x {
		if math.Abs(float64(v)) > math.Abs(float64(x[best])) {
			best = i
		}
	}
	return best
}

func TestQuantizeErrors(t *testing.T) {
	if err := Quantize(Q8_0, make([]float32, 33), make([]byte, 34)); err == nil {
		t.Error("Q8_0 of 33 elements: no error")
	}
	if err := Quantize(Q4_K, make([]float32, 256), make([]byte, 143)); err == nil {
		t.Error("Q4_K into 143 bytes: no error")
	}
	if err := Quantize(Q2_K, make([]float32, 256), make([]byte, 84)); err == nil {
		t.Error("Q2_K: no error for an unsupported quantizer")
	}
}

func TestQuantizeFloatFormats(t *testing.T) {
	x := []float32{1, -2.5, 0.1, 65504, 1e-8, float32(math.Inf(1))}
	for _, typ := range []Type{F32, F16, BF16} {
		q := make([]byte, len(x)*int(typ.TypeSize()))
		if err := Quantize(typ, x, q); err != nil {
			t.Fatal(err)
		}
		y := make([]float32, len(x))
		if err := Dequantize(typ, q, y); err != nil {
			t.Fatal(err)
		}
		for i := range x {
			var want float32
			switch typ {
			case F32:
				want = x[i]
			case F16:
				want = F16ToFloat32(Float32ToF16(x[i]))
			case BF16:
				want = BF16ToFloat32(Float32ToBF16(x[i]))
			}
			if math.Float32bits(y[i]) != math.Float32bits(want) {
				t.Errorf("%s: %g -> %g, want %g", typ, x[i], y[i], want)
			}
		}
	}
	// Spot values: 0.1 in half precision is 0x2e66 = 0.0999755859375.
	if h := Float32ToF16(0.1); h != 0x2e66 {
		t.Errorf("Float32ToF16(0.1) = %#04x, want 0x2e66", h)
	}
}
