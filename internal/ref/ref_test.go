package ref

import (
	"fmt"
	"math"
	"testing"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/model/layout"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// rowKey names one traced row.
type rowKey struct {
	stage      golden.Stage
	layer, pos int
}

func (k rowKey) String() string { return fmt.Sprintf("%s layer %d pos %d", k.stage, k.layer, k.pos) }

// capture runs tokens on route through a fresh engine and returns every row of every stage.
func capture(t *testing.T, m *model.Model, tokens []int32, route string) map[rowKey][]float32 {
	t.Helper()
	return captureWith(t, New, m, tokens, route)
}

// captureWith is capture on an engine built by newE.
func captureWith(t *testing.T, newE func(*engine.Model) (*Engine, error), m *model.Model, tokens []int32,
	route string) map[rowKey][]float32 {
	t.Helper()
	return captureRoute(t, newE, m, len(tokens), route, func(e *Engine, pos0, n int, tap *engine.Tap) error {
		_, err := e.Forward(tokens[pos0:pos0+n], pos0, tap)
		return err
	})
}

// captureRoute calls step on a fresh engine (newE) for positions 0..n-1 as route computes
// them: all in one call (prefill), or one call a position (decode). It returns every row
// of every stage traced.
func captureRoute(t *testing.T, newE func(*engine.Model) (*Engine, error), m *model.Model, n int, route string,
	step func(e *Engine, pos0, n int, tap *engine.Tap) error) map[rowKey][]float32 {
	t.Helper()
	e, err := newE(&m.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rows := map[rowKey][]float32{}
	all := trace.Plan{AllLayers: true, AllPositions: true, Prefill: true}
	tap := &engine.Tap{
		Sel: all.Resolve(m.Config.NLayer, n),
		Sink: func(st golden.Stage, layer, pos int, row []float32) {
			k := rowKey{st, golden.LayerOf(st, layer, m.Config.NLayer), pos}
			if _, dup := rows[k]; dup {
				t.Errorf("%v recorded twice", k)
			}
			rows[k] = append([]float32(nil), row...)
		},
	}
	if route == golden.RoutePrefill {
		if err := step(e, 0, n, tap); err != nil {
			t.Fatal(err)
		}
		return rows
	}
	for p := range n {
		if err := step(e, p, 1, tap); err != nil {
			t.Fatal(err)
		}
	}
	return rows
}

// forward64 is an independent float64 forward pass of both architectures, one token at a
// time, written from the math and sharing no code with the engine: it returns every stage's
// row.
func forward64(m *model.Model, tokens []int32) map[rowKey][]float64 {
	c, w := m.Config, m.Weights
	hd := c.HeadDim
	out := map[rowKey][]float64{}
	keep := func(st golden.Stage, layer, pos int, v []float64) {
		out[rowKey{st, golden.LayerOf(st, layer, c.NLayer), pos}] = append([]float64(nil), v...)
	}
	mul := func(mat model.Matrix, x []float64) []float64 {
		y := make([]float64, mat.Rows)
		for r := range y {
			for i, wi := range mat.Row(r) {
				y[r] += float64(wi) * x[i]
			}
		}
		return y
	}
	norm := func(x []float64, g []float32) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		s := 1 / math.Sqrt(ss/float64(len(x))+float64(c.Eps))
		y := make([]float64, len(x))
		for i := range x {
			y[i] = x[i] * s * float64(g[i])
		}
		return y
	}
	// RoPE: pair i turns by pos * base^(-2i/rope_dim), divided by the llama3 frequency
	// factor and the linear scaling factor. Normal style: pair (2i, 2i+1); NEOX: the halves
	// of the rotary part, (i, i+rope_dim/2).
	rope := func(v []float64, pos int) {
		half := c.RopeDim / 2
		for h := 0; h < len(v)/hd; h++ {
			for i := 0; i < half; i++ {
				th := float64(pos) * math.Pow(c.RopeBase, -float64(2*i)/float64(c.RopeDim))
				if w.RopeFreqs != nil {
					th /= float64(w.RopeFreqs[i])
				}
				if c.RopeScale != 0 {
					th /= c.RopeScale
				}
				j, k := h*hd+2*i, h*hd+2*i+1
				if c.RopeStyle == layout.RopeNeox {
					j, k = h*hd+i, h*hd+i+half
				}
				a, b := v[j], v[k]
				v[j] = a*math.Cos(th) - b*math.Sin(th)
				v[k] = a*math.Sin(th) + b*math.Cos(th)
			}
		}
	}
	bias := func(v []float64, b []float32) {
		for i := range b {
			v[i] += float64(b[i])
		}
	}
	keys := make([][][]float64, c.NLayer)
	vals := make([][][]float64, c.NLayer)
	for pos, tok := range tokens {
		x := make([]float64, c.Dim)
		for i, v := range w.TokEmbd.Row(int(tok)) {
			x[i] = float64(v)
		}
		keep(golden.EmbedOut, -1, pos, x)
		for l, L := range w.Layers {
			keep(golden.ResidualPreAttn, l, pos, x)
			xn := norm(x, L.AttnNorm)
			keep(golden.AttnIn, l, pos, xn)
			q, k, v := mul(L.Wq, xn), mul(L.Wk, xn), mul(L.Wv, xn)
			bias(q, L.Bq) // nil without biases
			bias(k, L.Bk)
			bias(v, L.Bv)
			keep(golden.QPreRope, l, pos, q)
			keep(golden.KPreRope, l, pos, k)
			keep(golden.V, l, pos, v)
			rope(q, pos)
			rope(k, pos)
			keep(golden.QPostRope, l, pos, q)
			keep(golden.KPostRope, l, pos, k)
			keys[l] = append(keys[l], k)
			vals[l] = append(vals[l], v)
			ctx := make([]float64, c.NHead*hd)
			for h := 0; h < c.NHead; h++ {
				kv := h / (c.NHead / c.NHeadKV)
				sc := make([]float64, pos+1)
				mx := math.Inf(-1)
				for p := range sc {
					for i := range hd {
						sc[p] += q[h*hd+i] * keys[l][p][kv*hd+i]
					}
					sc[p] /= math.Sqrt(float64(hd))
					mx = math.Max(mx, sc[p])
				}
				var sum float64
				for p := range sc {
					sc[p] = math.Exp(sc[p] - mx)
					sum += sc[p]
				}
				for p := range sc {
					for i := range hd {
						ctx[h*hd+i] += sc[p] / sum * vals[l][p][kv*hd+i]
					}
				}
			}
			keep(golden.AttnCtx, l, pos, ctx)
			ao := mul(L.Wo, ctx)
			keep(golden.AttnOut, l, pos, ao)
			for i := range x {
				x[i] += ao[i]
			}
			keep(golden.ResidualPostAttn, l, pos, x)
			xn = norm(x, L.FFNNorm)
			keep(golden.FFNNormIn, l, pos, xn)
			g, u := mul(L.WGate, xn), mul(L.WUp, xn)
			for i := range g {
				g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
			}
			mo := mul(L.WDown, g)
			keep(golden.MLPOut, l, pos, mo)
			for i := range x {
				x[i] += mo[i]
			}
			keep(golden.ResidualPostMLP, l, pos, x)
		}
		keep(golden.Logits, c.NLayer, pos, mul(w.Output, norm(x, w.OutNorm)))
	}
	return out
}

func relL2(got []float32, want []float64) float64 {
	var d, n float64
	for i, w := range want {
		e := float64(got[i]) - w
		d += e * e
		n += w * w
	}
	if n == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / n)
}

// TestForwardMatchesFloat64 checks every stage of every layer at every position, on both
// routes, against the float64 pass, for the reference and the cpu-f64acc candidate: on the
// tiny model, on a random llama whose odd dimensions exercise the kernels' tails, and on
// random models of each family: qwen2 with Qwen2.5-0.5B's heads (14/2 of 64), qwen2 with a
// partial rotary dimension, and a llama with RoPE frequency factors, linear scaling and
// tied output.
func TestForwardMatchesFloat64(t *testing.T) {
	tiny, err := model.Open(model.TinySpec)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		m      *model.Model
		tokens []int32
	}{
		{"tiny", tiny, randomTokens(68, tiny.Config.Vocab, 2)}, // more than one prefill chunk
		{"random", randomModel(testConfig, 1), randomTokens(70, testConfig.Vocab, 2)},
		{"qwen2", randomModel(qwenConfig, 1), randomTokens(70, qwenConfig.Vocab, 2)},
		{"qwen2-odd", randomModel(qwenOddConfig, 1), randomTokens(70, qwenOddConfig.Vocab, 2)},
		{"llama3", randomModel(llama3Config, 1), randomTokens(70, llama3Config.Vocab, 2)},
	}
	if testing.Short() {
		cases = cases[1:] // the random models: seconds, not six more
	}
	engines := []struct {
		name string
		new  func(*engine.Model) (*Engine, error)
	}{{Name, New}, {F64AccName, NewF64Acc}} // the candidate is as correct as the reference
	for _, c := range cases {
		want := forward64(c.m, c.tokens)
		for _, eng := range engines {
			for _, route := range []string{golden.RoutePrefill, golden.RouteDecode} {
				t.Run(eng.name+"/"+c.name+"/"+route, func(t *testing.T) {
					got := captureWith(t, eng.new, c.m, c.tokens, route)
					if len(got) != len(want) {
						t.Fatalf("%d rows traced, want %d", len(got), len(want))
					}
					worst, worstKey := 0.0, rowKey{}
					for k, w := range want {
						g, ok := got[k]
						if !ok {
							t.Fatalf("%v not traced", k)
						}
						if len(g) != len(w) {
							t.Fatalf("%v: %d values, want %d", k, len(g), len(w))
						}
						if e := relL2(g, w); e > worst {
							worst, worstKey = e, k
						}
					}
					if worst > 1e-5 {
						t.Errorf("%v: relative L2 error %.3g > 1e-5", worstKey, worst)
					}
					t.Logf("worst relative L2 error %.3g at %v", worst, worstKey)
				})
			}
		}
	}
}

// TestCacheGrowth runs past the initial KV cache on both routes: the prefill grows it once
// to hold the whole prompt, the decode route doubles it on the way; every row must agree.
func TestCacheGrowth(t *testing.T) {
	c := testConfig
	c.CtxLen = initialCache + 100
	m := randomModel(c, 3)
	tokens := randomTokens(initialCache+50, c.Vocab, 4)
	pre := capture(t, m, tokens, golden.RoutePrefill)
	dec := capture(t, m, tokens, golden.RouteDecode)
	if len(pre) != len(dec) || len(pre) == 0 {
		t.Fatalf("%d rows on prefill, %d on decode", len(pre), len(dec))
	}
	for k, p := range pre {
		d := dec[k]
		for i := range p {
			if math.Float32bits(p[i]) != math.Float32bits(d[i]) {
				t.Fatalf("%v element %d: prefill %v, decode %v", k, i, p[i], d[i])
			}
		}
	}
}
