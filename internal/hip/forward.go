//go:build rocm

package hip

/*
#include "greta_kernels.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
)

// The forward pass on the device, read top to bottom: Forward splits a call into passes,
// pass plans and records one, forward launches the model's kernels layer by layer with one
// trace call per stage, finish computes the logits; the kernel wrappers name what failed.

// Forward runs tokens at positions pos0.. in batched passes of up to 16384 tokens (one
// token: the decode route), extending the KV cache, and returns the logits of the last
// position, valid until the next call. Logits are computed for that position and the
// positions the tap plans.
func (e *Engine) Forward(tokens []int32, pos0 int, tap *engine.Tap) ([]float32, error) {
	c := e.c
	n := len(tokens)
	if n == 0 {
		return nil, fmt.Errorf("hip: no tokens")
	}
	if pos0 < 0 || pos0+n > c.CtxLen {
		return nil, fmt.Errorf("hip: positions %d..%d outside the context length %d", pos0, pos0+n-1, c.CtxLen)
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= c.Vocab {
			return nil, fmt.Errorf("hip: token %d at position %d outside the vocabulary (0..%d)", t, pos0+i, c.Vocab-1)
		}
	}
	return e.runSpan(driver.Span{Tokens: tokens, Pos0: pos0, N: n, Lo: 0, Hi: c.NLayer, WantLast: true}, tap)
}

// Replay runs layers lo..hi from rows, the residual stream entering layer lo at positions
// pos0.., uploaded in the passes Forward uses (engine.Replayer).
func (e *Engine) Replay(lo, hi, pos0 int, rows []float32, tap *engine.Tap) error {
	if err := driver.CheckReplay(e.c, lo, hi, pos0, len(rows)); err != nil {
		return fmt.Errorf("hip: %w", err)
	}
	_, err := e.runSpan(driver.Span{Rows: rows, Pos0: pos0, N: len(rows) / e.c.Dim, Lo: lo, Hi: hi}, tap)
	return err
}

// runSpan splits s into passes of at most passRows positions, of even size: every kernel
// computes a row the same way whatever the rows beside it, so the split does not change a
// bit (the few-row product of decode is kept for passes of at most GRETA_MATVEC_MAX_ROWS
// positions, and even passes never shrink a long prompt to that). It returns the last
// pass's logits of its last position when s wants them.
func (e *Engine) runSpan(s driver.Span, tap *engine.Tap) ([]float32, error) {
	if e.allocs == nil {
		return nil, fmt.Errorf("hip: engine is closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	passes := (s.N + e.passRows - 1) / e.passRows
	size := (s.N + passes - 1) / passes
	var logits []float32
	for off := 0; off < s.N; off += size {
		var err error
		if logits, err = e.pass(s.Part(off, min(size, s.N-off), e.c.Dim), tap); err != nil {
			return nil, err
		}
	}
	return logits, nil
}

// pass runs one pass of s through the device. Logits are computed for the planned
// positions and, when s.WantLast, for the last position, whose logits it returns.
func (e *Engine) pass(s driver.Span, tap *engine.Tap) ([]float32, error) {
	if err := e.grow(s.N); err != nil {
		return nil, err
	}
	if err := e.plan(s, tap); err != nil {
		return nil, err
	}
	e.startRecording(tap)
	err := e.forward(s, tap)
	var logits []float32
	if err == nil {
		logits, err = e.finish(s, tap)
	}
	if werr := e.waitRecording(); err == nil && werr != nil {
		err = fmt.Errorf("hip: forward of positions %d..%d: %w", s.Pos0, s.Pos0+s.N-1, werr)
	}
	if err != nil || logits == nil {
		return nil, err
	}
	e.last = append(e.last[:0], logits...) // the staging mirror is reused by the next pass
	return e.last, nil
}

// forward launches the model's kernels for the pass s. Read it top to bottom: it is the
// model, one trace call per stage.
func (e *Engine) forward(s driver.Span, tap *engine.Tap) error {
	c := e.c
	n, pos0 := s.N, s.Pos0
	dim, ffn, qd, kvd := c.Dim, c.FFNDim, e.qDim, e.kvDim
	if s.Tokens != nil {
		toks, err := view(e.ints, 0, n)
		if err != nil {
			return err
		}
		if rc := C.greta_embed(toks, C.int(n), e.tokEmbd, C.int(c.Vocab), C.int(dim), e.x); rc != 0 {
			return fail(rc, "embed", "", -1, "tokens [%d] table [%d %d]", n, c.Vocab, dim)
		}
		if err := e.trace(tap, golden.EmbedOut, -1, pos0, n, dim, e.x); err != nil {
			return err
		}
	} else if err := e.uploadRows(s); err != nil { // a replay: the given residual stream at layer lo's input
		return err
	}
	for l := s.Lo; l <= min(s.Hi, c.NLayer-1); l++ {
		L := &e.layers[l]
		kLayer, err1 := view(e.kc, l*c.CtxLen*kvd, (pos0+n)*kvd) // positions 0..pos0+n-1
		vLayer, err2 := view(e.vc, l*c.CtxLen*kvd, (pos0+n)*kvd)
		k, err3 := view(kLayer, pos0*kvd, n*kvd) // this pass's rows of the cache
		v, err4 := view(vLayer, pos0*kvd, n*kvd)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return fmt.Errorf("hip: layer %d: kv cache view: %w", l, err)
		}

		if err := e.trace(tap, golden.ResidualPreAttn, l, pos0, n, dim, e.x); err != nil {
			return err
		}
		if err := e.rmsnorm("attn", l, e.x, L.attnNorm, n, e.xb); err != nil {
			return err
		}
		if err := e.trace(tap, golden.AttnIn, l, pos0, n, dim, e.xb); err != nil {
			return err
		}
		if err := e.product("qkv", l, e.xb, n, dim, L.qkv,
			biasedSeg(e.q, qd, L.bq), biasedSeg(k, kvd, L.bk), biasedSeg(v, kvd, L.bv)); err != nil {
			return err
		}
		for _, s := range []struct {
			st    golden.Stage
			b     buf
			width int
		}{{golden.QPreRope, e.q, qd}, {golden.KPreRope, k, kvd}, {golden.V, v, kvd}} {
			if err := e.trace(tap, s.st, l, pos0, n, s.width, s.b); err != nil {
				return err
			}
		}
		if err := e.rope("q", l, e.q, n, c.NHead, pos0); err != nil {
			return err
		}
		if err := e.rope("k", l, k, n, c.NHeadKV, pos0); err != nil {
			return err
		}
		if err := e.trace(tap, golden.QPostRope, l, pos0, n, qd, e.q); err != nil {
			return err
		}
		if err := e.trace(tap, golden.KPostRope, l, pos0, n, kvd, k); err != nil {
			return err
		}
		if err := e.attention(l, kLayer, vLayer, n, pos0); err != nil {
			return err
		}
		if err := e.trace(tap, golden.AttnCtx, l, pos0, n, qd, e.att); err != nil {
			return err
		}
		if err := e.product("attn_output", l, e.att, n, qd, L.wo, seg(e.out, dim)); err != nil {
			return err
		}
		if err := e.trace(tap, golden.AttnOut, l, pos0, n, dim, e.out); err != nil {
			return err
		}
		if err := e.add("attn", l, n); err != nil {
			return err
		}
		if err := e.trace(tap, golden.ResidualPostAttn, l, pos0, n, dim, e.x); err != nil {
			return err
		}
		if err := e.rmsnorm("ffn", l, e.x, L.ffnNorm, n, e.xb); err != nil {
			return err
		}
		if err := e.trace(tap, golden.FFNNormIn, l, pos0, n, dim, e.xb); err != nil {
			return err
		}
		if err := e.product("ffn_gate_up", l, e.xb, n, dim, L.gu, seg(e.gate, ffn), seg(e.up, ffn)); err != nil {
			return err
		}
		if rc := C.greta_swiglu(e.gate, e.up, C.uint64_t(n*ffn), e.gate); rc != 0 {
			return fail(rc, "swiglu", "ffn", l, "gate [%d %d] up [%d %d]", n, ffn, n, ffn)
		}
		if err := e.product("ffn_down", l, e.gate, n, ffn, L.down, seg(e.out, dim)); err != nil {
			return err
		}
		if err := e.trace(tap, golden.MLPOut, l, pos0, n, dim, e.out); err != nil {
			return err
		}
		if err := e.add("ffn", l, n); err != nil {
			return err
		}
		if err := e.trace(tap, golden.ResidualPostMLP, l, pos0, n, dim, e.x); err != nil {
			return err
		}
		if err := e.flush(false); err != nil {
			return err
		}
	}
	return nil
}

// uploadRows copies the rows of a replay into the residual stream.
func (e *Engine) uploadRows(s driver.Span) error {
	x, err := view(e.x, 0, len(s.Rows))
	if err == nil {
		err = upload(x, s.Rows)
	}
	if err != nil {
		return fmt.Errorf("hip: uploading the residual rows of positions %d..%d: %w", s.Pos0, s.Pos0+s.N-1, err)
	}
	return nil
}

func seg(b buf, width int) C.greta_seg { return biasedSeg(b, width, buf{}) }

// biasedSeg is an output segment whose columns each add bias (a zero buf: none) after the
// product: the q, k and v biases land inside q_pre_rope, k_pre_rope and v, as the CPU adds
// them.
func biasedSeg(b buf, width int, bias buf) C.greta_seg {
	return C.greta_seg{buf: b, ld: C.int32_t(width), cols: C.int32_t(width), bias: bias}
}

func (e *Engine) rmsnorm(stage string, layer int, x, w buf, n int, out buf) error {
	if rc := C.greta_rmsnorm(x, w, C.int(n), C.int(e.c.Dim), C.float(e.c.Eps), out); rc != 0 {
		return fail(rc, "rmsnorm", stage, layer, "x [%d %d] w [%d]", n, e.c.Dim, count(w))
	}
	return nil
}

// product is Y = X W^T into the output segments: the tiled matmul, or matvec for the few
// rows of decode.
func (e *Engine) product(stage string, layer int, x buf, m, k int, w buf, segs ...C.greta_seg) error {
	n := 0
	for _, s := range segs {
		n += int(s.cols)
	}
	kernel := "matmul"
	var rc C.int
	if m <= C.GRETA_MATVEC_MAX_ROWS {
		kernel = "matvec"
		rc = C.greta_matvec(x, C.int(m), C.int(k), w, C.int(n), &segs[0], C.int(len(segs)))
	} else {
		rc = C.greta_matmul(x, C.int(m), C.int(k), w, C.int(n), &segs[0], C.int(len(segs)))
	}
	if rc != 0 {
		return fail(rc, kernel, stage, layer, "x [%d %d] w [%d %d]", m, k, n, k)
	}
	return nil
}

// rope turns the n rows of x in the model's style, by the host's frequency table when the
// engine holds one (ropeFreqs), else by base^(-2i/rope_dim) computed on the device.
func (e *Engine) rope(stage string, layer int, x buf, n, heads, pos0 int) error {
	c := e.c
	// The kernel's GRETA_ROPE_* are engine.RopeStyle's values: a difference does not compile.
	_ = [1]struct{}{}[(int(engine.RopeNorm)-C.GRETA_ROPE_NORM)|(int(engine.RopeNeox)-C.GRETA_ROPE_NEOX)]
	if rc := C.greta_rope(x, C.int(n), C.int(heads), C.int(c.HeadDim), C.int(c.RopeDim), C.int(pos0),
		C.int(c.RopeStyle), C.double(c.RopeBase), e.ropeFreqs); rc != 0 {
		return fail(rc, "rope", stage, layer, "x [%d %d] pos %d..%d rope_dim %d style %s freqs [%d]", n, heads*c.HeadDim,
			pos0, pos0+n-1, c.RopeDim, c.RopeStyle, count(e.ropeFreqs)/2)
	}
	return nil
}

// attention runs causal attention of the n queries in e.q over the layer's cache. Decode
// (one query) and head sizes the tiled kernel lacks go through the per-query kernel.
func (e *Engine) attention(layer int, kc, vc buf, n, pos0 int) error {
	c := e.c
	hd := c.HeadDim
	tiled := n > 1 && (hd == 16 || hd == 32 || hd == 64 || hd == 128)
	if tiled {
		if rc := C.greta_attention_prefill(e.q, kc, vc, C.int(n), C.int(pos0), C.int(c.NHead), C.int(c.NHeadKV),
			C.int(hd), e.att); rc != 0 {
			return fail(rc, "attention_prefill", "", layer, "q [%d %d] kv [%d %d] heads %d/%d", n, e.qDim, pos0+n, e.kvDim,
				c.NHead, c.NHeadKV)
		}
		return nil
	}
	for i := range n {
		q, err1 := view(e.q, i*e.qDim, e.qDim)
		out, err2 := view(e.att, i*e.qDim, e.qDim)
		k, err3 := view(kc, 0, (pos0+i+1)*e.kvDim)
		v, err4 := view(vc, 0, (pos0+i+1)*e.kvDim)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return fmt.Errorf("hip: attention layer %d: %w", layer, err)
		}
		if rc := C.greta_attention_decode(q, k, v, 1, C.int(pos0+i), C.int(c.NHead), C.int(c.NHeadKV), C.int(hd),
			e.scratch, out); rc != 0 {
			return fail(rc, "attention_decode", "", layer, "q [1 %d] kv [%d %d] heads %d/%d", e.qDim, pos0+i+1, e.kvDim,
				c.NHead, c.NHeadKV)
		}
	}
	return nil
}

// add sets x += out for n rows.
func (e *Engine) add(stage string, layer, n int) error {
	if rc := C.greta_add(e.x, e.out, C.uint64_t(n*e.c.Dim), e.x); rc != 0 {
		return fail(rc, "add", stage, layer, "x [%d %d] y [%d %d]", n, e.c.Dim, n, e.c.Dim)
	}
	return nil
}

// finish computes the final norm and the logits of the rows that need them into staging,
// applies the logits faults, flushes and returns the last row's logits, valid once the
// recording goroutine is done.
func (e *Engine) finish(s driver.Span, tap *engine.Tap) ([]float32, error) {
	c := e.c
	n, pos0 := s.N, s.Pos0
	rows := e.hostInts[e.logitRowsList.off : e.logitRowsList.off+e.logitRowsList.n]
	r := len(rows)
	if r == 0 { // none in this pass: none planned before the last pass, or a replay that stops before them
		return nil, e.flush(true)
	}
	if r > e.logitRows {
		if err := e.release(e.lin); err != nil {
			return nil, err
		}
		e.logitRows = 0
		var err error
		if e.lin, err = e.alloc("final norm", r*c.Dim); err != nil {
			return nil, err
		}
		e.logitRows = r
	}
	logits, chunk, off, err := e.stage(r * c.Vocab)
	if err != nil {
		return nil, err
	}
	idx, err := view(e.ints, e.logitRowsList.off, r)
	if err != nil {
		return nil, err
	}
	if rc := C.greta_gather(e.x, C.int(c.Dim), idx, C.int(r), e.lin); rc != 0 {
		return nil, fail(rc, "gather", "final", -1, "x [%d %d] rows %d", n, c.Dim, r)
	}
	if err := e.rmsnorm("final", -1, e.lin, e.outNorm, r, e.lin); err != nil {
		return nil, err
	}
	if err := e.product("logits", -1, e.lin, r, c.Dim, e.output, seg(logits, c.Vocab)); err != nil {
		return nil, err
	}
	if err := e.faults(tap, golden.Logits, c.NLayer, pos0, r, c.Vocab, logits, rows); err != nil {
		return nil, err
	}
	sums, err := e.sketch(golden.Logits, c.NLayer, e.staging[chunk].b, off, r, c.Vocab)
	if err != nil {
		return nil, err
	}
	e.pending = append(e.pending, pendingRows{st: golden.Logits, layer: c.NLayer, pos0: pos0, w: c.Vocab,
		list: e.logitRowsList, chunk: chunk, off: off, sums: sums})
	if err := e.flush(true); err != nil {
		return nil, err
	}
	last := off + (r-1)*c.Vocab // the last row, when this is the last pass
	return e.staging[chunk].host[last : last+c.Vocab], nil
}
