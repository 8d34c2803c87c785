package ref

import (
	"math"
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/model/layout"
)

// TestRopeByHand pins the rotation convention: adjacent pairs (x[2i], x[2i+1]) turned by
// pos * base^(-2i/rope_dim). Head dim 4, base 10000, position 3: pair 0 turns by 3 rad,
// pair 1 by 3/100 rad. With cos 3 = -0.9899924966, sin 3 = 0.1411200081,
// cos 0.03 = 0.9995500337, sin 0.03 = 0.0299955002, the vector (1, 2, 3, 4) becomes
//
//	1*cos3 - 2*sin3 = -1.2722325127     1*sin3 + 2*cos3 = -1.8388649851
//	3*cos.03 - 4*sin.03 = 2.8786681004  3*sin.03 + 4*cos.03 = 4.0881866356
func TestRopeByHand(t *testing.T) {
	want := []float64{-1.2722325127, -1.8388649851, 2.8786681004, 4.0881866356}
	e := &Engine{c: model.Config{HeadDim: 4, RopeDim: 4, RopeBase: 10000}}
	e.ropeCos, e.ropeSin = ropeTable(ropeFreq(e.c, nil), 0, 4)
	v := []float32{1, 2, 3, 4, 1, 2, 3, 4} // two heads, one token
	e.rope(v, 3, 2)
	for i, w := range append(want, want...) {
		if math.Abs(float64(v[i])-w) > 1e-6 {
			t.Errorf("rotated[%d] = %.10f, want %.10f", i, v[i], w)
		}
	}
	// A partial rotary dimension leaves the rest of the head alone.
	e = &Engine{c: model.Config{HeadDim: 4, RopeDim: 2, RopeBase: 10000}}
	e.ropeCos, e.ropeSin = ropeTable(ropeFreq(e.c, nil), 0, 4)
	v = []float32{1, 2, 3, 4}
	e.rope(v, 3, 1)
	if got := []float32{v[2], v[3]}; got[0] != 3 || got[1] != 4 || math.Abs(float64(v[0])-want[0]) > 1e-6 {
		t.Errorf("rope_dim 2: %v", v)
	}
}

// TestRopeNeoxByHand pins the NEOX convention (qwen2): pair i is (x[i], x[i+rope_dim/2]).
// The same head and angles as TestRopeByHand: pair 0 is (1, 3) turned by 3 rad, pair 1 is
// (2, 4) turned by 0.03 rad, so (1, 2, 3, 4) becomes
//
//	x0 = 1*cos3 - 3*sin3 = -1.4133525208    x2 = 1*sin3 + 3*cos3 = -2.8288574817
//	x1 = 2*cos.03 - 4*sin.03 = 1.8791180667 x3 = 2*sin.03 + 4*cos.03 = 4.0581911354
//
// With rope_dim 4 of a head of 6, the halves are those of the rotary part: elements 4 and 5
// stay, and pair 0 is (x0, x2), not (x0, x3).
func TestRopeNeoxByHand(t *testing.T) {
	want := []float64{-1.4133525208, 1.8791180667, -2.8288574817, 4.0581911354}
	e := &Engine{c: model.Config{HeadDim: 4, RopeDim: 4, RopeBase: 10000, RopeStyle: layout.RopeNeox}}
	e.ropeCos, e.ropeSin = ropeTable(ropeFreq(e.c, nil), 0, 4)
	v := []float32{1, 2, 3, 4, 1, 2, 3, 4}
	e.rope(v, 3, 2)
	for i, w := range append(want, want...) {
		if math.Abs(float64(v[i])-w) > 1e-6 {
			t.Errorf("rotated[%d] = %.10f, want %.10f", i, v[i], w)
		}
	}
	e = &Engine{c: model.Config{HeadDim: 6, RopeDim: 4, RopeBase: 10000, RopeStyle: layout.RopeNeox}}
	e.ropeCos, e.ropeSin = ropeTable(ropeFreq(e.c, nil), 0, 4)
	v = []float32{1, 2, 3, 4, 5, 6}
	e.rope(v, 3, 1)
	for i, w := range append(want, 5, 6) {
		if math.Abs(float64(v[i])-w) > 1e-6 {
			t.Errorf("rope_dim 4 of 6: rotated[%d] = %.10f, want %.10f", i, v[i], w)
		}
	}
}

// TestRopeFrequencyFactorsByHand pins how rope_freqs.weight and linear scaling enter the
// angle: pair i turns by pos * base^(-2i/rope_dim) / factor[i] / linear factor, as ggml
// divides theta by the frequency factor and multiplies it by freq_scale = 1/factor. Head dim
// 4, base 10000, position 3, factors (3, 0.25): pair 0 turns by 3/3 = 1 rad, pair 1 by
// 0.03/0.25 = 0.12 rad. With cos 1 = 0.5403023059, sin 1 = 0.8414709848, cos 0.12 =
// 0.9928086359, sin 0.12 = 0.1197122073, the vector (1, 2, 3, 4) becomes
//
//	1*cos1 - 2*sin1 = -1.1426396637       1*sin1 + 2*cos1 = 1.9220755966
//	3*cos.12 - 4*sin.12 = 2.4995770784    3*sin.12 + 4*cos.12 = 4.3303711653
//
// A linear factor of 2 halves the angles (0.5 and 0.06 rad): cos .5 = 0.8775825619, sin .5
// = 0.4794255386, cos .06 = 0.9982005399, sin .06 = 0.0599640065 give
//
//	1*cos.5 - 2*sin.5 = -0.0812685153     1*sin.5 + 2*cos.5 = 2.2345906624
//	3*cos.06 - 4*sin.06 = 2.7547455939    3*sin.06 + 4*cos.06 = 4.1726941792
func TestRopeFrequencyFactorsByHand(t *testing.T) {
	for _, tc := range []struct {
		scale float64
		want  []float64
	}{
		{0, []float64{-1.1426396637, 1.9220755966, 2.4995770784, 4.3303711653}},
		{2, []float64{-0.0812685153, 2.2345906624, 2.7547455939, 4.1726941792}},
	} {
		e := &Engine{c: model.Config{HeadDim: 4, RopeDim: 4, RopeBase: 10000, RopeScale: tc.scale}}
		e.ropeCos, e.ropeSin = ropeTable(ropeFreq(e.c, []float32{3, 0.25}), 0, 4)
		v := []float32{1, 2, 3, 4}
		e.rope(v, 3, 1)
		for i, w := range tc.want {
			if math.Abs(float64(v[i])-w) > 1e-6 {
				t.Errorf("linear factor %v: rotated[%d] = %.10f, want %.10f", tc.scale, i, v[i], w)
			}
		}
	}
}

func TestForwardRejectsBadInput(t *testing.T) {
	m := randomModel(testConfig, 1)
	e, err := New(&m.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tests := []struct {
		name   string
		tokens []int32
		pos0   int
		want   string
	}{
		{"no tokens", nil, 0, "no tokens"},
		{"past the context", []int32{1, 2}, 159, "positions 159..160 outside the context length 160"},
		{"negative position", []int32{1}, -1, "outside the context length"},
		{"token outside the vocabulary", []int32{1, 101}, 0, "token 101 at position 1 outside the vocabulary (0..100)"},
	}
	for _, tc := range tests {
		if _, err := e.Forward(tc.tokens, tc.pos0, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestNewRejectsBadShapes(t *testing.T) {
	tests := []struct {
		name   string
		change func(*model.Model)
		want   string
	}{
		{"short attn_k", func(m *model.Model) { m.Weights.Layers[1].Wk.Rows-- },
			`ref: model: tensor "blk.1.attn_k.weight": 35x72 with 2592 values, the config wants 36x72`},
		{"ffn norm", func(m *model.Model) { m.Weights.Layers[2].FFNNorm = m.Weights.Layers[2].FFNNorm[:3] },
			`tensor "blk.2.ffn_norm.weight": 3 values, the config wants 72`},
		{"layers", func(m *model.Model) { m.Weights.Layers = m.Weights.Layers[:2] }, "2 layers of weights, block_count 3"},
		{"heads", func(m *model.Model) { m.Config.NHeadKV = 3 }, "head_count 4 is not a multiple of head_count_kv 3"},
		{"rope", func(m *model.Model) { m.Config.RopeDim = 20 }, "rope dimension 20"},
	}
	for _, tc := range tests {
		m := randomModel(testConfig, 1)
		tc.change(m)
		if _, err := New(&m.Model); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestForwardDoesNotAllocate runs untraced decode steps and batched chunks, by tokens and
// by replay from given rows.
func TestForwardDoesNotAllocate(t *testing.T) {
	m := randomModel(testConfig, 1)
	e, err := New(&m.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tokens := randomTokens(100, testConfig.Vocab, 3)
	pos := 0
	if n := testing.AllocsPerRun(20, func() {
		if _, err := e.Forward(tokens[pos%100:pos%100+1], pos%100, nil); err != nil {
			t.Fatal(err)
		}
		pos++
	}); n != 0 {
		t.Errorf("decode step: %v allocations", n)
	}
	if n := testing.AllocsPerRun(3, func() {
		if _, err := e.Forward(tokens, 0, nil); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("prefill of 100 tokens: %v allocations", n)
	}
	rows := make([]float32, 100*testConfig.Dim)
	for i := range rows {
		rows[i] = float32(i%5) - 2
	}
	if n := testing.AllocsPerRun(3, func() {
		if err := e.Replay(1, testConfig.NLayer, 0, rows, nil); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("replay of 100 positions: %v allocations", n)
	}
	if n := testing.AllocsPerRun(20, func() {
		if err := e.Replay(0, 1, pos%100, rows[:testConfig.Dim], nil); err != nil {
			t.Fatal(err)
		}
		pos++
	}); n != 0 {
		t.Errorf("replayed decode step: %v allocations", n)
	}
}
