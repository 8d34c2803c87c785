package ref

import (
	"fmt"

	"github.com/gretabisect/gretabisect/golden"
)

// The forward pass one operation at a time, for per-operation own error: an engine that
// writes its rows of every stage cannot replay a layer, but each stage can be recomputed by
// the reference from that engine's own input rows of the stage, and the difference is the
// operation's own error on real activations. Every entry point runs the forward pass's own
// code and kernels. They use the engine's scratch buffers: never call them during a
// Forward or Replay, nor from several goroutines.

// RMSNorm sets out (n, dim) to the rows of x (n, dim) normalised with weight g: a layer's
// AttnNorm (attn_in) or FFNNorm (ffn_norm_in). out may be x.
func (e *Engine) RMSNorm(out, x, g []float32) error {
	if err := e.checkRows("rmsnorm", x, len(g), out, len(g)); err != nil {
		return err
	}
	e.rmsnorm(out, x, g)
	return nil
}

// Project sets out (n, rows) to x (n, cols) times the transpose of projection p of layer.
func (e *Engine) Project(out []float32, layer int, p Proj, x []float32) error {
	if err := e.checkLayer(layer); err != nil {
		return err
	}
	L := &e.m.Weights.Layers[layer]
	w := p.of(L)
	if err := e.checkRows(w.Name, x, w.Cols, out, w.Rows); err != nil {
		return err
	}
	e.project(out, L, p, x, len(x)/w.Cols)
	return nil
}

// Rope rotates x (n, heads*head_dim) in place, row t at position pos0+t.
func (e *Engine) Rope(x []float32, pos0, heads int) error {
	width := heads * e.c.HeadDim
	if err := e.checkRows("rope", x, width, x, width); err != nil {
		return err
	}
	if n := len(x) / width; pos0 < 0 || pos0+n > e.c.CtxLen {
		return fmt.Errorf("ref: rope: positions %d..%d outside the context length %d", pos0, pos0+n-1, e.c.CtxLen)
	}
	e.reserve(pos0 + len(x)/width)
	e.rope(x, pos0, heads)
	return nil
}

// Attend sets out (q_dim) to the attention context of the query q (q_dim, after RoPE) at
// position pos over keys (after RoPE) and vals, (pos+1, kv_dim) each: the rows of
// positions 0..pos.
func (e *Engine) Attend(out, q, keys, vals []float32, pos int) error {
	if pos < 0 || pos >= e.c.CtxLen {
		return fmt.Errorf("ref: attention: position %d outside the context length %d", pos, e.c.CtxLen)
	}
	if err := e.checkRows("attention", q, e.qDim, out, e.qDim); err != nil {
		return err
	}
	for _, kv := range [][]float32{keys, vals} {
		if len(kv) != (pos+1)*e.kvDim || len(q) != e.qDim {
			return fmt.Errorf("ref: attention at position %d: %d query and %d key/value values, want %d and %d (%d rows of %d)",
				pos, len(q), len(kv), e.qDim, (pos+1)*e.kvDim, pos+1, e.kvDim)
		}
	}
	e.attention(out, q, keys, vals, pos, 1)
	return nil
}

// MLP sets out (n, dim) to the SwiGLU MLP of layer applied to x (n, dim).
func (e *Engine) MLP(out []float32, layer int, x []float32) error {
	if err := e.checkLayer(layer); err != nil {
		return err
	}
	dim := e.c.Dim
	if err := e.checkRows("mlp", x, dim, out, dim); err != nil {
		return err
	}
	for i := 0; i < len(x); i += chunk * dim {
		j := min(i+chunk*dim, len(x))
		e.mlp(out[i:j], &e.m.Weights.Layers[layer], x[i:j], (j-i)/dim)
	}
	return nil
}

// Add sets out = x + y, the residual add. out may be x.
func (e *Engine) Add(out, x, y []float32) error {
	if len(x) != len(out) || len(y) != len(out) {
		return fmt.Errorf("ref: add: %d and %d values into %d", len(x), len(y), len(out))
	}
	add(out, x, y)
	return nil
}

// Logits sets out (n, vocab) to the output projection of the final norm of x (n, dim),
// the residual leaving the last layer.
func (e *Engine) Logits(out, x []float32) error {
	dim, vocab := e.c.Dim, e.c.Vocab
	if err := e.checkRows("logits", x, dim, out, vocab); err != nil {
		return err
	}
	for i := 0; i < len(x)/dim; i += chunk {
		n := min(chunk, len(x)/dim-i)
		lin := e.lin[:n*dim]
		copy(lin, x[i*dim:(i+n)*dim])
		e.head(out[i*vocab:(i+n)*vocab], lin, n)
	}
	return nil
}

func (e *Engine) checkLayer(layer int) error {
	if layer < 0 || layer >= e.c.NLayer {
		return fmt.Errorf("ref: layer %d outside the model's %d layers", layer, e.c.NLayer)
	}
	return nil
}

// checkRows checks that x holds whole rows of width in and out the same number of rows of
// width outW.
func (e *Engine) checkRows(what string, x []float32, in int, out []float32, outW int) error {
	if len(x) == 0 || len(x)%in != 0 || len(out) != len(x)/in*outW {
		return fmt.Errorf("ref: %s: %d input values into %d: want whole rows of %d into rows of %d", what, len(x), len(out),
			in, outW)
	}
	return nil
}

// Input is a row an operation reads: stage Stage of layer Layer (as records number it) at
// position Pos, or with Prefix at every position 0..Pos.
type Input struct {
	Stage  golden.Stage
	Layer  int
	Pos    int
	Prefix bool
}

// op is one stage's operation: what it reads, relative to its own layer, and how the
// forward pass computes it. Together the table is the forward pass taken apart.
type op struct {
	in []input
	do func(e *Engine, out []float32, layer, pos int, in [][]float32) error
}

type input struct {
	st     golden.Stage
	dl     int  // layer offset
	prefix bool // every position 0..pos
}

var ops = [golden.NumStages]op{
	// embed_out reads only its token: it inherits nothing, so its own error is its end-to-end error.
	golden.ResidualPreAttn: {[]input{{golden.ResidualPostMLP, -1, false}}, // embed_out in layer 0
		func(e *Engine, out []float32, _, _ int, in [][]float32) error { copy(out, in[0]); return nil }},
	golden.AttnIn: {[]input{{golden.ResidualPreAttn, 0, false}},
		func(e *Engine, out []float32, l, _ int, in [][]float32) error {
			return e.RMSNorm(out, in[0], e.m.Weights.Layers[l].AttnNorm)
		}},
	golden.QPreRope: {[]input{{golden.AttnIn, 0, false}}, projection(ProjQ)},
	golden.KPreRope: {[]input{{golden.AttnIn, 0, false}}, projection(ProjK)},
	golden.V:        {[]input{{golden.AttnIn, 0, false}}, projection(ProjV)},
	golden.QPostRope: {[]input{{golden.QPreRope, 0, false}},
		func(e *Engine, out []float32, _, pos int, in [][]float32) error {
			copy(out, in[0])
			return e.Rope(out, pos, e.c.NHead)
		}},
	golden.KPostRope: {[]input{{golden.KPreRope, 0, false}},
		func(e *Engine, out []float32, _, pos int, in [][]float32) error {
			copy(out, in[0])
			return e.Rope(out, pos, e.c.NHeadKV)
		}},
	golden.AttnCtx: {[]input{{golden.QPostRope, 0, false}, {golden.KPostRope, 0, true}, {golden.V, 0, true}},
		func(e *Engine, out []float32, _, pos int, in [][]float32) error {
			return e.Attend(out, in[0], in[1], in[2], pos)
		}},
	golden.AttnOut: {[]input{{golden.AttnCtx, 0, false}}, projection(ProjO)},
	golden.ResidualPostAttn: {[]input{{golden.ResidualPreAttn, 0, false}, {golden.AttnOut, 0, false}},
		func(e *Engine, out []float32, _, _ int, in [][]float32) error { return e.Add(out, in[0], in[1]) }},
	golden.FFNNormIn: {[]input{{golden.ResidualPostAttn, 0, false}},
		func(e *Engine, out []float32, l, _ int, in [][]float32) error {
			return e.RMSNorm(out, in[0], e.m.Weights.Layers[l].FFNNorm)
		}},
	golden.MLPOut: {[]input{{golden.FFNNormIn, 0, false}},
		func(e *Engine, out []float32, l, _ int, in [][]float32) error { return e.MLP(out, l, in[0]) }},
	golden.ResidualPostMLP: {[]input{{golden.ResidualPostAttn, 0, false}, {golden.MLPOut, 0, false}},
		func(e *Engine, out []float32, _, _ int, in [][]float32) error { return e.Add(out, in[0], in[1]) }},
	golden.Logits: {[]input{{golden.ResidualPostMLP, -1, false}}, // the last layer's; logits are layer n_layer
		func(e *Engine, out []float32, _, _ int, in [][]float32) error { return e.Logits(out, in[0]) }},
}

func projection(p Proj) func(e *Engine, out []float32, l, _ int, in [][]float32) error {
	return func(e *Engine, out []float32, l, _ int, in [][]float32) error { return e.Project(out, l, p, in[0]) }
}

// Inputs lists the rows the reference's operation for stage st at (layer, pos) reads, in
// the order Recompute takes them. Layers are numbered as records number them (logits:
// n_layer). It is nil for embed_out, which reads only its token.
func Inputs(st golden.Stage, layer, pos int) []Input {
	if int(st) >= golden.NumStages {
		return nil
	}
	var out []Input
	for _, in := range ops[st].in {
		s, l := in.st, layer+in.dl
		if st == golden.ResidualPreAttn && layer == 0 {
			s, l = golden.EmbedOut, -1
		}
		out = append(out, Input{Stage: s, Layer: l, Pos: pos, Prefix: in.prefix})
	}
	return out
}

// Width returns the length of a row of stage st.
func (e *Engine) Width(st golden.Stage) int {
	switch st {
	case golden.QPreRope, golden.QPostRope, golden.AttnCtx:
		return e.qDim
	case golden.KPreRope, golden.V, golden.KPostRope:
		return e.kvDim
	case golden.Logits:
		return e.c.Vocab
	}
	return e.c.Dim
}

// Recompute sets out (a row of st) to stage st at (layer, pos) as the reference computes it
// from in, the rows Inputs lists, in that order (a Prefix input holds the pos+1 rows of
// positions 0..pos one after the other).
func (e *Engine) Recompute(out []float32, st golden.Stage, layer, pos int, in [][]float32) error {
	if int(st) >= golden.NumStages || ops[st].do == nil {
		return fmt.Errorf("ref: %s is not computed from rows of other stages", st)
	}
	if st.Info().PerLayer {
		if err := e.checkLayer(layer); err != nil {
			return err
		}
	}
	if len(out) != e.Width(st) {
		return fmt.Errorf("ref: recomputing %s: a row of %d values, want %d", st, len(out), e.Width(st))
	}
	want := Inputs(st, layer, pos)
	if len(in) != len(want) {
		return fmt.Errorf("ref: recomputing %s: %d input rows, want %d", st, len(in), len(want))
	}
	for i, w := range want {
		n := e.Width(w.Stage)
		if w.Prefix {
			n *= pos + 1
		}
		if len(in[i]) != n {
			return fmt.Errorf("ref: recomputing %s layer %d pos %d: input %s has %d values, want %d", st, layer, pos,
				w.Stage, len(in[i]), n)
		}
	}
	return ops[st].do(e, out, layer, pos, in)
}
