// Package ref is the CPU reference engine: a float32 forward pass of the llama and qwen2
// architectures (internal/model/layout.Archs) whose every output
// bit is fixed by the model and the tokens, whatever the machine (amd64 or arm64), the
// number of threads, the route (batched prefill or one token at a time) or the kernel (SIMD
// or portable). Every other backend is judged against it.
//
// How: each output element is computed by one goroutine in a fixed order (kernels.go), with
// no fused multiply-add, and the elementary functions are internal/detmath's.
// The inner loops come in four implementations with the same bits: portable Go, SSE
// assembly (amd64 by default; the purego tag turns it off), and AVX2 or AVX-512 through
// simd/archsimd (GOEXPERIMENT=simd). Importing the package registers it with
// gretatest/engine as "cpu".
package ref

import (
	"fmt"
	"math"
	"runtime"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/detmath"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/model/layout"
)

// Name is the backend's name in the engine registry.
const Name = "cpu"

func init() {
	engine.Register(Name, func(m *engine.Model) (engine.Engine, error) { return New(m) })
	engine.Register(F64AccName, func(m *engine.Model) (engine.Engine, error) { return NewF64Acc(m) })
}

// chunk is the most prompt tokens one pass through the layers handles: each weight matrix
// is streamed from memory once per chunk, and a chunk's activations stay in cache.
const chunk = 64

// Engine runs one model. It is not safe for concurrent use.
type Engine struct {
	m      *engine.Model
	c      model.Config
	pool   *pool
	k      kernels // the inner loops, chosen at construction
	device string

	qDim, kvDim int
	groups      int     // query heads per KV head
	scale       float32 // 1/sqrt(head_dim)

	// The KV cache and the RoPE table cover positions 0..cached-1, grown by doubling up to
	// the context length as Forward reaches further: a model with a long context pays only
	// for the positions it runs.
	cached           int
	keys, vals       [][]float32 // (layer)(cached, kv_dim): after RoPE for keys
	ropeCos, ropeSin []float32   // (cached, rope_dim/2): angle pos * ropeFreq[i]
	ropeFreq         []float64   // (rope_dim/2): see ropeFreq

	// Activations of one chunk of up to `chunk` tokens, row-major by token.
	x      []float32 // (chunk, dim) residual stream
	xb     []float32 // (chunk, dim) RMSNorm output
	q      []float32 // (chunk, q_dim) queries
	att    []float32 // (chunk, q_dim) attention context
	out    []float32 // (chunk, dim) attention or MLP output, the residual's addend
	gate   []float32 // (chunk, ffn) gate projection, then the SwiGLU product
	up     []float32 // (chunk, ffn) up projection
	scores []float32 // (workers, ctx) attention scores, one row per pool goroutine
	lin    []float32 // (chunk, dim) final norm of the rows that need logits
	logits []float32 // (chunk, vocab)
	rows   []int     // chunk rows whose logits are computed
	last   []float32 // logits of the last position of the latest Forward

	mm   matmulTask
	attn attnTask
	glu  swigluTask

	progress func(done int) // see SetProgress
}

// New builds the reference engine for m, whose KV cache grows up to the model's context
// length. It checks that every weight has the shape the configuration implies, so a bad
// model fails here with the tensor's name instead of panicking in a kernel.
func New(m *engine.Model) (*Engine, error) { return newEngine(m, refKernels, Name) }

func newEngine(m *engine.Model, k kernels, device string) (*Engine, error) {
	c := m.Config
	if err := model.Check(m); err != nil {
		return nil, fmt.Errorf("ref: %w", err)
	}
	workers := runtime.GOMAXPROCS(0)
	e := &Engine{
		m:      m,
		c:      c,
		pool:   newPool(workers),
		k:      k,
		device: device,
		qDim:   c.NHead * c.HeadDim,
		kvDim:  c.NHeadKV * c.HeadDim,
		groups: c.NHead / c.NHeadKV,
		scale:  float32(1 / math.Sqrt(float64(c.HeadDim))),
	}
	e.keys = make([][]float32, c.NLayer)
	e.vals = make([][]float32, c.NLayer)
	e.ropeFreq = ropeFreq(c, m.Weights.RopeFreqs)
	e.reserve(min(c.CtxLen, initialCache))
	e.x = make([]float32, chunk*c.Dim)
	e.xb = make([]float32, chunk*c.Dim)
	e.q = make([]float32, chunk*e.qDim)
	e.att = make([]float32, chunk*e.qDim)
	e.out = make([]float32, chunk*c.Dim)
	e.gate = make([]float32, chunk*c.FFNDim)
	e.up = make([]float32, chunk*c.FFNDim)
	e.scores = make([]float32, workers*c.CtxLen)
	e.lin = make([]float32, chunk*c.Dim)
	e.logits = make([]float32, chunk*c.Vocab)
	e.rows = make([]int, 0, chunk)
	e.attn.e = e
	return e, nil
}

// initialCache is the number of positions the KV cache holds before it first grows.
const initialCache = 512

// reserve grows the KV cache and the RoPE table to hold at least n positions.
func (e *Engine) reserve(n int) {
	if n <= e.cached {
		return
	}
	size := min(max(n, 2*e.cached), e.c.CtxLen)
	for l := range e.keys {
		e.keys[l] = append(e.keys[l], make([]float32, (size-e.cached)*e.kvDim)...)
		e.vals[l] = append(e.vals[l], make([]float32, (size-e.cached)*e.kvDim)...)
	}
	cos, sin := ropeTable(e.ropeFreq, e.cached, size)
	e.ropeCos, e.ropeSin = append(e.ropeCos, cos...), append(e.ropeSin, sin...)
	e.cached = size
}

// ropeFreq returns the angular frequency of each pair i: base^(-2i/rope_dim), divided by
// factors[i] when the model has rope_freqs.weight (llama3: ggml's rope divides theta by
// it) and by the linear scaling factor when it has one (ggml multiplies by its inverse).
func ropeFreq(c model.Config, factors []float32) []float64 {
	lnBase := detmath.Log(c.RopeBase)
	freq := make([]float64, c.RopeDim/2)
	for i := range freq {
		freq[i] = detmath.Exp(-float64(float64(2*i)/float64(c.RopeDim)) * lnBase)
		if factors != nil {
			freq[i] /= float64(factors[i])
		}
		if c.RopeScale != 0 {
			freq[i] /= c.RopeScale
		}
	}
	return freq
}

// ropeTable returns cos and sin of pos * freq[i] for positions from..to-1 and every pair i,
// each angle computed directly in float64 (no recurrence accumulating error).
func ropeTable(freq []float64, from, to int) (cos, sin []float32) {
	half := len(freq)
	cos, sin = make([]float32, (to-from)*half), make([]float32, (to-from)*half)
	for pos := from; pos < to; pos++ {
		for i, f := range freq {
			s, c := detmath.Sincos(float64(pos) * f)
			cos[(pos-from)*half+i], sin[(pos-from)*half+i] = float32(c), float32(s)
		}
	}
	return cos, sin
}

// Device is "cpu" for the reference and "cpu-f64acc" for the float64-accumulating candidate.
func (e *Engine) Device() string { return e.device }

// Reset empties the KV cache. Nothing needs clearing: Forward at position p reads only the
// cache rows of positions 0..p, which a run writes before it reads them, starting from 0.
func (e *Engine) Reset() {}

// Close stops the worker goroutines.
func (e *Engine) Close() error {
	e.pool.stop()
	return nil
}

// Forward runs tokens at positions pos0.. through the model in chunks of up to 64 tokens
// (one batched pass each), extending the KV cache, and returns the logits of the last
// position, valid until the next call. Logits are computed only for that position and for
// positions the tap plans.
func (e *Engine) Forward(tokens []int32, pos0 int, tap *engine.Tap) ([]float32, error) {
	c := e.c
	if len(tokens) == 0 {
		return nil, fmt.Errorf("ref: no tokens")
	}
	if pos0 < 0 || pos0+len(tokens) > c.CtxLen {
		return nil, fmt.Errorf("ref: positions %d..%d outside the context length %d", pos0, pos0+len(tokens)-1, c.CtxLen)
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= c.Vocab {
			return nil, fmt.Errorf("ref: token %d at position %d outside the vocabulary (0..%d)", t, pos0+i, c.Vocab-1)
		}
	}
	e.run(driver.Span{Tokens: tokens, Pos0: pos0, N: len(tokens), Lo: 0, Hi: c.NLayer, WantLast: true}, tap)
	return e.last, nil
}

// Replay runs layers lo..hi from rows, the residual stream entering layer lo at positions
// pos0.., in the chunks Forward uses (engine.Replayer).
func (e *Engine) Replay(lo, hi, pos0 int, rows []float32, tap *engine.Tap) error {
	if err := driver.CheckReplay(e.c, lo, hi, pos0, len(rows)); err != nil {
		return fmt.Errorf("ref: %w", err)
	}
	e.run(driver.Span{Rows: rows, Pos0: pos0, N: len(rows) / e.c.Dim, Lo: lo, Hi: hi}, tap)
	return nil
}

// run splits s into chunks and runs them in order.
func (e *Engine) run(s driver.Span, tap *engine.Tap) {
	e.reserve(s.Pos0 + s.N)
	for i := 0; i < s.N; i += chunk {
		j := min(i+chunk, s.N)
		e.forward(s.Part(i, j-i, e.c.Dim), tap)
		if e.progress != nil && j < s.N {
			e.progress(s.Pos0 + j)
		}
	}
}

// SetProgress makes Forward call f with the positions done after each chunk but the last
// (engine.Progressor); nil stops it.
func (e *Engine) SetProgress(f func(done int)) { e.progress = f }

// forward runs one chunk of s.N <= 64 positions through layers s.Lo..s.Hi. Read it top to
// bottom: it is the model, one tap per stage.
func (e *Engine) forward(s driver.Span, tap *engine.Tap) {
	c, w := e.c, e.m.Weights
	nt, dim, pos0 := s.N, c.Dim, s.Pos0
	x, xb, q, att, out := e.x[:nt*dim], e.xb[:nt*dim], e.q[:nt*e.qDim], e.att[:nt*e.qDim], e.out[:nt*dim]

	if s.Tokens != nil {
		for t, tok := range s.Tokens {
			copy(x[t*dim:(t+1)*dim], w.TokEmbd.Row(int(tok)))
		}
		tap.Rows(golden.EmbedOut, -1, pos0, dim, x)
	} else {
		copy(x, s.Rows) // a replay: the given residual stream at layer lo's input
	}

	for l := s.Lo; l <= min(s.Hi, c.NLayer-1); l++ {
		L := &w.Layers[l]
		k := e.keys[l][pos0*e.kvDim : (pos0+nt)*e.kvDim] // this chunk's rows of the cache
		v := e.vals[l][pos0*e.kvDim : (pos0+nt)*e.kvDim]

		tap.Rows(golden.ResidualPreAttn, l, pos0, dim, x)
		e.rmsnorm(xb, x, L.AttnNorm)
		tap.Rows(golden.AttnIn, l, pos0, dim, xb)

		e.project(q, L, ProjQ, xb, nt)
		e.project(k, L, ProjK, xb, nt)
		e.project(v, L, ProjV, xb, nt)
		tap.Rows(golden.QPreRope, l, pos0, e.qDim, q)
		tap.Rows(golden.KPreRope, l, pos0, e.kvDim, k)
		tap.Rows(golden.V, l, pos0, e.kvDim, v)

		e.rope(q, pos0, c.NHead)
		e.rope(k, pos0, c.NHeadKV)
		tap.Rows(golden.QPostRope, l, pos0, e.qDim, q)
		tap.Rows(golden.KPostRope, l, pos0, e.kvDim, k)

		e.attention(att, q, e.keys[l], e.vals[l], pos0, nt)
		tap.Rows(golden.AttnCtx, l, pos0, e.qDim, att)
		e.project(out, L, ProjO, att, nt)
		tap.Rows(golden.AttnOut, l, pos0, dim, out)
		add(x, x, out)
		tap.Rows(golden.ResidualPostAttn, l, pos0, dim, x)

		e.rmsnorm(xb, x, L.FFNNorm)
		tap.Rows(golden.FFNNormIn, l, pos0, dim, xb)
		e.mlp(out, L, xb, nt)
		tap.Rows(golden.MLPOut, l, pos0, dim, out)
		add(x, x, out)
		tap.Rows(golden.ResidualPostMLP, l, pos0, dim, x)
	}
	if s.Hi < c.NLayer {
		return
	}

	// Logits only for the rows someone reads.
	e.rows = e.rows[:0]
	for t := range nt {
		if (s.WantLast && t == nt-1) || tap.Want(golden.Logits, c.NLayer, pos0+t) {
			e.rows = append(e.rows, t)
		}
	}
	if len(e.rows) == 0 {
		return
	}
	lin := e.lin[:len(e.rows)*dim]
	for j, t := range e.rows {
		copy(lin[j*dim:(j+1)*dim], x[t*dim:(t+1)*dim])
	}
	logits := e.logits[:len(e.rows)*c.Vocab]
	e.head(logits, lin, len(e.rows))
	for j, t := range e.rows {
		row := logits[j*c.Vocab : (j+1)*c.Vocab]
		tap.Rows(golden.Logits, c.NLayer, pos0+t, c.Vocab, row)
		if s.WantLast && t == nt-1 {
			e.last = row
		}
	}
}

// rmsnorm sets each row of out to x * g / sqrt(mean(x^2) + eps): out (n, dim), x (n, dim),
// g (dim). out may be x.
func (e *Engine) rmsnorm(out, x, g []float32) {
	dim := len(g)
	for r := 0; r < len(x)/dim; r++ {
		xr, or := x[r*dim:(r+1)*dim], out[r*dim:(r+1)*dim]
		mean := e.k.dot(xr, xr) / float32(dim)
		s := float32(1 / math.Sqrt(float64(mean+e.c.Eps)))
		for i, xi := range xr {
			or[i] = float32(xi*s) * g[i]
		}
	}
}

// project sets y (nt, rows) = x (nt, cols) W^T for the projection p of layer L: the one
// place a projection's weight is applied, and where its bias (attn_q/k/v.bias of qwen2) is
// added after the product, inside the projection's stage as llama.cpp adds it.
func (e *Engine) project(y []float32, L *model.Layer, p Proj, x []float32, nt int) {
	e.matmul(y, p.of(L), x, nt)
	if b := p.bias(L); b != nil {
		for r := 0; r < len(y); r += len(b) {
			add(y[r:r+len(b)], y[r:r+len(b)], b)
		}
	}
}

// mlp sets out (nt, dim) to the SwiGLU MLP of x (nt, dim): W_down (silu(W_gate x) * W_up x),
// through the gate and up buffers.
func (e *Engine) mlp(out []float32, L *model.Layer, x []float32, nt int) {
	gate, up := e.gate[:nt*e.c.FFNDim], e.up[:nt*e.c.FFNDim]
	e.project(gate, L, ProjGate, x, nt)
	e.project(up, L, ProjUp, x, nt)
	e.swiglu(gate, up)
	e.project(out, L, ProjDown, gate, nt)
}

// head sets logits (n, vocab) to the output projection of the final norm of x (n, dim),
// normalised in place.
func (e *Engine) head(logits, x []float32, n int) {
	e.rmsnorm(x, x, e.m.Weights.OutNorm)
	e.matmul(logits, &e.m.Weights.Output, x, n)
}

// rope rotates pair i < rope_dim/2 of every head of every row of v (n, heads*head_dim), row
// t at position pos0+t, by the angle pos * ropeFreq[i]. The pair is (2i, 2i+1) in the
// normal style (llama) and (i, i+rope_dim/2) in the NEOX style (qwen2); elements from
// rope_dim on are left alone.
func (e *Engine) rope(v []float32, pos0, heads int) {
	hd, half := e.c.HeadDim, e.c.RopeDim/2
	step, other := 2, 1 // pair i is (step*i, step*i+other)
	if e.c.RopeStyle == layout.RopeNeox {
		step, other = 1, half
	}
	width := heads * hd
	for t := 0; t < len(v)/width; t++ {
		cos := e.ropeCos[(pos0+t)*half : (pos0+t+1)*half]
		sin := e.ropeSin[(pos0+t)*half : (pos0+t+1)*half]
		for h := range heads {
			x := v[t*width+h*hd : t*width+h*hd+2*half]
			for i := range half {
				a, b := x[step*i], x[step*i+other]
				x[step*i] = float32(a*cos[i]) - float32(b*sin[i])
				x[step*i+other] = float32(a*sin[i]) + float32(b*cos[i])
			}
		}
	}
}

// add sets out = x + y element by element; out may be x.
func add(out, x, y []float32) {
	x, y = x[:len(out)], y[:len(out)]
	for i := range out {
		out[i] = x[i] + y[i]
	}
}

// swiglu sets gate[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + e^-g) in float64, on
// every pool goroutine: its exponentials cost as much as a small matrix product.
func (e *Engine) swiglu(gate, up []float32) {
	e.glu = swigluTask{gate: gate, up: up[:len(gate)]}
	e.pool.run(&e.glu, (len(gate)+swigluBlock-1)/swigluBlock)
}

const swigluBlock = 4096

type swigluTask struct{ gate, up []float32 }

func (t *swigluTask) do(_, b int) {
	lo, hi := b*swigluBlock, min((b+1)*swigluBlock, len(t.gate))
	up := t.up[lo:hi]
	for i, g := range t.gate[lo:hi] {
		d := float64(g)
		t.gate[lo+i] = float32(d/(1+detmath.ExpF32(-d))) * up[i]
	}
}

// matmulTask computes y = W x for nt tokens, blocks of matmulBlock weight rows at a time.
type matmulTask struct {
	k     *kernels
	w     *model.Matrix
	x, y  []float32
	nt    int
	nRows int
}

// matmulBlock rows of W per block: a multiple of the SIMD tile height, small enough for
// both cores to get even shares of the smallest matrices.
const matmulBlock = 16

func (t *matmulTask) do(_, b int) {
	r0 := b * matmulBlock
	t.k.matmul(t.w.Data, t.w.Cols, t.x, t.nt, t.y, t.w.Rows, r0, min(r0+matmulBlock, t.nRows))
}

// matmul sets y (nt, rows) = x (nt, cols) W^T: y[t][r] = W.Row(r) . x[t].
func (e *Engine) matmul(y []float32, w *model.Matrix, x []float32, nt int) {
	e.mm = matmulTask{k: &e.k, w: w, x: x, y: y, nt: nt, nRows: w.Rows}
	e.pool.run(&e.mm, (w.Rows+matmulBlock-1)/matmulBlock)
}

// attnTask is causal attention of one chunk; block b is (token b/heads, query head b%heads).
type attnTask struct {
	e          *Engine
	out, q     []float32
	keys, vals []float32 // (positions, kv_dim): the layer's cache, or given rows
	pos0       int
}

// attention sets out (nt, q_dim) to the attention context of the queries q (nt, q_dim) at
// positions pos0.. over keys and values (pos0+nt or more rows of kv_dim): row t attends to
// rows 0..pos0+t.
func (e *Engine) attention(out, q, keys, vals []float32, pos0, nt int) {
	e.attn.out, e.attn.q, e.attn.keys, e.attn.vals, e.attn.pos0 = out, q, keys, vals, pos0
	e.pool.run(&e.attn, nt*e.c.NHead)
}

// do computes one head of one token: scores = q.k * scale over positions 0..pos, softmax in
// position order, then the weighted sum of the values in position order.
func (a *attnTask) do(worker, b int) {
	e := a.e
	hd, nh := e.c.HeadDim, e.c.NHead
	t, h := b/nh, b%nh
	pos := a.pos0 + t
	kvOff := (h / e.groups) * hd
	q := a.q[t*e.qDim+h*hd : t*e.qDim+(h+1)*hd]
	keys, vals, dot := a.keys, a.vals, e.k.dot
	s := e.scores[worker*e.c.CtxLen : worker*e.c.CtxLen+pos+1]

	mx := float32(math.Inf(-1))
	for p := range s {
		s[p] = dot(q, keys[p*e.kvDim+kvOff:p*e.kvDim+kvOff+hd]) * e.scale
		mx = max(mx, s[p])
	}
	var sum float32
	for p, x := range s {
		s[p] = float32(detmath.ExpF32(float64(x - mx)))
		sum += s[p]
	}
	out := a.out[t*e.qDim+h*hd : t*e.qDim+(h+1)*hd]
	clear(out)
	for p, x := range s {
		axpy(out, x/sum, vals[p*e.kvDim+kvOff:p*e.kvDim+kvOff+hd])
	}
}
