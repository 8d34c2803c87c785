package gretatest

import (
	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/model"
)

// toyEngine is a small causal model with the stage structure of a Llama layer (row-local
// stages, attention mixing earlier positions through a KV cache, two residual adds), cheap
// enough to bisect hundreds of times. Its arithmetic is plain float32: deterministic.
type toyEngine struct {
	cfg     model.Config
	device  string
	variant string
	jitter  bool             // perturb attn_out by a relative 1e-6: another "device" within tolerance
	kv      [][][2][]float32 // [layer][pos]{k, v}
}

const toyDim = 4

func toyModel() *model.Model {
	return &model.Model{Model: engine.Model{Config: model.Config{Arch: "toy", NLayer: 10, Dim: toyDim, CtxLen: 64, Vocab: 16}}}
}

func init() {
	engine.Register("toy", func(m *engine.Model) (engine.Engine, error) {
		e := &toyEngine{cfg: m.Config, device: "toy"}
		e.Reset()
		return e, nil
	})
	// The same device built another way: its goldens are not the toy's.
	engine.Register("toyv2", func(m *engine.Model) (engine.Engine, error) {
		e := &toyEngine{cfg: m.Config, device: "toy", variant: "v2"}
		e.Reset()
		return e, nil
	})
	engine.Register("toygpu", func(m *engine.Model) (engine.Engine, error) {
		e := &toyEngine{cfg: m.Config, device: "toygpu", jitter: true}
		e.Reset()
		return e, nil
	})
}

func (e *toyEngine) Device() string  { return e.device }
func (e *toyEngine) Variant() string { return e.variant }
func (e *toyEngine) Close() error    { return nil }
func (e *toyEngine) Reset() {
	e.kv = make([][][2][]float32, e.cfg.NLayer)
}

func (e *toyEngine) Forward(tokens []int32, pos0 int, tap *engine.Tap) ([]float32, error) {
	n, d := len(tokens), toyDim
	x := make([]float32, n*d)
	for i, t := range tokens {
		copy(x[i*d:], []float32{float32(t) + 1, 0.5 * float32(t), 1, -1})
	}
	tap.Rows(golden.EmbedOut, -1, pos0, d, x)
	buf := func(f func(i int, row []float32)) []float32 {
		out := make([]float32, n*d)
		for i := range n {
			f(i, out[i*d:(i+1)*d])
		}
		return out
	}
	for l := range e.cfg.NLayer {
		tap.Rows(golden.ResidualPreAttn, l, pos0, d, x)
		in := buf(func(i int, r []float32) { scale(r, x[i*d:], 0.9, 0) })
		tap.Rows(golden.AttnIn, l, pos0, d, in)
		q := buf(func(i int, r []float32) { scale(r, in[i*d:], 1, float32(l)*0.01) })
		tap.Rows(golden.QPreRope, l, pos0, d, q)
		k := buf(func(i int, r []float32) { scale(r, in[i*d:], 1.1, 0) })
		tap.Rows(golden.KPreRope, l, pos0, d, k)
		v := buf(func(i int, r []float32) { scale(r, in[i*d:], 1, -0.1) })
		tap.Rows(golden.V, l, pos0, d, v)
		qr := buf(func(i int, r []float32) { scale(r, q[i*d:], 1.01, 0) })
		tap.Rows(golden.QPostRope, l, pos0, d, qr)
		kr := buf(func(i int, r []float32) { scale(r, k[i*d:], 0.99, 0) })
		tap.Rows(golden.KPostRope, l, pos0, d, kr)
		for i := range n {
			e.kv[l] = append(e.kv[l], [2][]float32{append([]float32(nil), kr[i*d:(i+1)*d]...), append([]float32(nil), v[i*d:(i+1)*d]...)})
		}
		ctx := buf(func(i int, r []float32) {
			p := pos0 + i
			for j := 0; j <= p; j++ {
				for c := range r {
					r[c] += float32(e.kv[l][j][1][c]+float32(0.1*e.kv[l][j][0][c])) * float32(1+float32(0.01*qr[i*d+c]))
				}
			}
			for c := range r {
				r[c] /= float32(p + 1)
			}
		})
		tap.Rows(golden.AttnCtx, l, pos0, d, ctx)
		outScale := float32(0.1)
		if e.jitter {
			outScale = 0.1000001
		}
		out := buf(func(i int, r []float32) { scale(r, ctx[i*d:], outScale, 0) })
		tap.Rows(golden.AttnOut, l, pos0, d, out)
		x = buf(func(i int, r []float32) { add(r, x[i*d:], out[i*d:]) })
		tap.Rows(golden.ResidualPostAttn, l, pos0, d, x)
		fin := buf(func(i int, r []float32) { scale(r, x[i*d:], 0.8, 0) })
		tap.Rows(golden.FFNNormIn, l, pos0, d, fin)
		mlp := buf(func(i int, r []float32) { scale(r, fin[i*d:], 0.1, 0.01) })
		tap.Rows(golden.MLPOut, l, pos0, d, mlp)
		x = buf(func(i int, r []float32) { add(r, x[i*d:], mlp[i*d:]) })
		tap.Rows(golden.ResidualPostMLP, l, pos0, d, x)
	}
	var logits []float32
	for i := range n {
		row := make([]float32, e.cfg.Vocab)
		for v := range row {
			row[v] = float32(x[i*d+v%d]*float32(v+1)) * 0.01
		}
		if tap.Want(golden.Logits, e.cfg.NLayer, pos0+i) || i == n-1 {
			tap.Rows(golden.Logits, e.cfg.NLayer, pos0+i, e.cfg.Vocab, row)
		}
		logits = row
	}
	return logits, nil
}

func scale(dst, src []float32, s, a float32) {
	for c := range dst {
		dst[c] = float32(src[c]*s) + a
	}
}

func add(dst, a, b []float32) {
	for c := range dst {
		dst[c] = a[c] + b[c]
	}
}
