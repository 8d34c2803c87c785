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
	"strings"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/model"
)

func init() {
	engine.Register(Name, func(m *engine.Model) (engine.Engine, error) { return New(m) })
}

// Engine runs one model on the GPU. It is not safe for concurrent use.
type Engine struct {
	c           model.Config
	device      string
	qDim, kvDim int
	allocs      []buf // everything Close frees

	// Weights, uploaded once. Wq, Wk, Wv are stacked into one (q+2kv, dim) matrix and
	// WGate, WUp into one (2ffn, dim) matrix: one product each, split by output segments.
	// A tied model's output is token_embd's buffer: the (vocab, dim) matrix is uploaded once.
	tokEmbd, output, outNorm buf
	layers                   []layerWeights
	ropeFreqs                buf // (rope_dim/2) float64 frequencies from the host; zero: the kernel's own (ropeFreqs)
	kc, vc                   buf // (layer, ctx, kv_dim) KV cache; keys after RoPE

	passRows int // most tokens per pass (maxPassRows; tests lower it)

	// Activations of up to rows tokens, grown on demand, row-major by token.
	rows          int
	x, xb, out    buf // (rows, dim) residual stream, RMSNorm output, residual addend
	q, att        buf // (rows, q_dim) queries, attention context
	gate, up      buf // (rows, ffn) gate projection (then the SwiGLU product), up projection
	scratch       buf // decode attention: scores or per-tile partial results
	logitRows     int
	lin           buf // (logitRows, dim) final norm
	ints          buf // int32: this pass's tokens, then its row lists
	intsCap       int
	hostInts      []int32
	lists         []rowList // by stage*NLayer + layer: planned rows of a traced stage
	candidates    []int32   // rows of the pass at selected positions
	logitRowsList rowList   // rows whose logits are computed

	// Traced rows are gathered on the device into staging as the pass goes (the logits
	// rows are computed there). After each layer that traced something the trace queue
	// copies them into page-locked mirrors, one copy per staging chunk, and a recording
	// goroutine waits for the copy and hands the rows to the tap: the launching thread
	// never waits for the device, and the sink (hashing) runs while the device computes
	// the next layers.
	staging  []stagingChunk
	pending  []pendingRows
	records  chan traceBatch
	recorded chan error
	pinned   []hostBuf // everything Close frees on the host side
	last     []float32 // the last position's logits; Forward returns them

	// When the tap takes sketches, the trace queue computes the sketch sums of every
	// gathered row (greta_sketch) into sums, sketchSums float64 values a row, copied back
	// with the rows, so the recorder does not sketch on the host.
	sketching                    bool
	coefs                        map[int]buf // coefficient tables by row length, uploaded once
	sums                         buf
	sumsHost                     hostBuf // page-locked mirror of sums
	sumsCap, sumsUsed, sumsFlush int     // in rows
	run                          sketchRun
}

// maxPassRows bounds the tokens of one pass: the kernels launch one grid row per token
// (at most 65535), and the activations grow with it.
const maxPassRows = 16384

type layerWeights struct {
	attnNorm, ffnNorm buf
	qkv, wo, gu, down buf
	bq, bk, bv        buf // q, k, v biases (qwen2); zero buffers, no bias, otherwise
}

type stagingChunk struct {
	b             buf
	host          []float32 // page-locked mirror
	used, flushed int       // elements written this pass, and copied back so far
}

const stagingChunkLen = 1 << 22 // elements

// New checks m (see checkModel), selects the device and uploads the weights.
func New(m *engine.Model) (*Engine, error) {
	if err := checkModel(m); err != nil {
		return nil, err
	}
	dev, err := initDevice()
	if err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c := m.Config
	e := &Engine{c: c, device: dev, qDim: c.NHead * c.HeadDim, kvDim: c.NHeadKV * c.HeadDim, passRows: maxPassRows}
	if err := e.upload(m.Weights, ropeFreqs(m)); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Device names the GPU: "cuda-sm90", "hip-gfx942".
func (e *Engine) Device() string { return e.device }

// Reset empties the KV cache. Positions are written before they are read, so nothing is
// left to clear.
func (e *Engine) Reset() {}

// Close frees the device memory.
func (e *Engine) Close() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var errs []error
	for _, b := range e.allocs {
		if err := free(b); err != nil {
			errs = append(errs, err)
		}
	}
	for _, h := range e.pinned {
		if err := hostFree(h); err != nil {
			errs = append(errs, err)
		}
	}
	e.allocs, e.pinned = nil, nil
	e.staging = nil
	e.coefs = nil
	e.rows, e.logitRows, e.intsCap, e.sumsCap = 0, 0, 0, 0
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("hip: close: %w", err)
	}
	return nil
}

func (e *Engine) alloc(what string, n int) (buf, error) {
	b, err := alloc(n)
	if err != nil {
		return b, fmt.Errorf("hip: allocating %s (%d floats): %w", what, n, err)
	}
	e.allocs = append(e.allocs, b)
	return b, nil
}

// allocHost allocates n elements of page-locked host memory.
func (e *Engine) allocHost(what string, n int) (hostBuf, error) {
	h, err := hostAlloc(n)
	if err != nil {
		return h, fmt.Errorf("hip: allocating the host copy of %s (%d floats): %w", what, n, err)
	}
	e.pinned = append(e.pinned, h)
	return h, nil
}

// releaseHost frees h, which must have come from allocHost.
func (e *Engine) releaseHost(h hostBuf) error { return untrack(&e.pinned, h, hostFree) }

// release frees the named buffers, which must have come from alloc.
func (e *Engine) release(bs ...buf) error {
	for _, b := range bs {
		if err := untrack(&e.allocs, b, free); err != nil {
			return err
		}
	}
	return nil
}

// untrack frees x and drops it from the list of what Close frees; x not in the list (a
// buffer never allocated) is left alone.
func untrack[T comparable](list *[]T, x T, free func(T) error) error {
	for i, a := range *list {
		if a == x {
			*list = append((*list)[:i], (*list)[i+1:]...)
			if err := free(x); err != nil {
				return fmt.Errorf("hip: free: %w", err)
			}
			return nil
		}
	}
	return nil
}

// put allocates a buffer for the concatenation of parts and uploads them.
func (e *Engine) put(what string, parts ...[]float32) (buf, error) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b, err := e.alloc(what, n)
	if err != nil {
		return b, err
	}
	off := 0
	for _, p := range parts {
		v, err := view(b, off, len(p))
		if err == nil {
			err = upload(v, p)
		}
		if err != nil {
			return b, fmt.Errorf("hip: uploading %s: %w", what, err)
		}
		off += len(p)
	}
	return b, nil
}

// upload puts the weights on the device, and freqs, the rope table (nil for none).
func (e *Engine) upload(w *model.Weights, freqs []float64) error {
	c := e.c
	var err error
	if e.tokEmbd, err = e.put(w.TokEmbd.Name, w.TokEmbd.Data); err != nil {
		return err
	}
	e.output = e.tokEmbd
	// A tied model's Output is token_embd itself (model.FromFile): its buffer serves both.
	if &w.Output.Data[0] != &w.TokEmbd.Data[0] {
		if e.output, err = e.put(w.Output.Name, w.Output.Data); err != nil {
			return err
		}
	}
	if e.outNorm, err = e.put("output_norm.weight", w.OutNorm); err != nil {
		return err
	}
	if freqs != nil {
		if e.ropeFreqs, err = e.alloc("rope frequencies", 2*len(freqs)); err != nil {
			return err
		}
		if err := uploadFloat64(e.ropeFreqs, freqs); err != nil {
			return fmt.Errorf("hip: uploading the rope frequencies: %w", err)
		}
	}
	e.layers = make([]layerWeights, c.NLayer)
	for l := range w.Layers {
		L, D := &w.Layers[l], &e.layers[l]
		blk := fmt.Sprintf("blk.%d.", l)
		for _, u := range []struct {
			dst   *buf
			what  string
			parts [][]float32
		}{
			{&D.attnNorm, blk + "attn_norm", [][]float32{L.AttnNorm}},
			{&D.ffnNorm, blk + "ffn_norm", [][]float32{L.FFNNorm}},
			{&D.qkv, blk + "attn_q,k,v", [][]float32{L.Wq.Data, L.Wk.Data, L.Wv.Data}},
			{&D.wo, blk + "attn_output", [][]float32{L.Wo.Data}},
			{&D.gu, blk + "ffn_gate,up", [][]float32{L.WGate.Data, L.WUp.Data}},
			{&D.down, blk + "ffn_down", [][]float32{L.WDown.Data}},
			{&D.bq, blk + "attn_q.bias", [][]float32{L.Bq}},
			{&D.bk, blk + "attn_k.bias", [][]float32{L.Bk}},
			{&D.bv, blk + "attn_v.bias", [][]float32{L.Bv}},
		} {
			if u.parts[0] == nil { // a bias the model does not have
				continue
			}
			if *u.dst, err = e.put(u.what, u.parts...); err != nil {
				return err
			}
		}
	}
	kvLen := c.NLayer * c.CtxLen * e.kvDim
	if e.kc, err = e.alloc("key cache", kvLen); err != nil {
		return err
	}
	if e.vc, err = e.alloc("value cache", kvLen); err != nil {
		return err
	}
	scratch := C.greta_attention_decode_scratch(1, C.int(c.CtxLen-1), C.int(c.NHead), C.int(c.HeadDim))
	e.scratch, err = e.alloc("attention scratch", int(scratch))
	return err
}

// grow makes the activation buffers hold n rows.
func (e *Engine) grow(n int) error {
	if n <= e.rows {
		return nil
	}
	if err := e.release(e.x, e.xb, e.out, e.q, e.att, e.gate, e.up); err != nil {
		return err
	}
	e.rows = 0
	c := e.c
	for _, a := range []struct {
		dst   *buf
		what  string
		width int
	}{
		{&e.x, "residual", c.Dim}, {&e.xb, "norm output", c.Dim}, {&e.out, "residual addend", c.Dim},
		{&e.q, "queries", e.qDim}, {&e.att, "attention context", e.qDim},
		{&e.gate, "gate", c.FFNDim}, {&e.up, "up", c.FFNDim},
	} {
		var err error
		if *a.dst, err = e.alloc(a.what, n*a.width); err != nil {
			return err
		}
	}
	e.rows = n
	return nil
}

// kernelError is a kernel's failure with where it ran and on what shapes.
type kernelError struct {
	where, shapes string
	err           error
}

func (k *kernelError) Error() string { return k.where + ": " + k.err.Error() + "; " + k.shapes }
func (k *kernelError) Unwrap() error { return k.err }

// fail turns the library's error for rc into a kernelError: `rmsnorm (attn) layer 0:
// launch failed: ...; x [827 2048] w [2048]`. layer < 0 leaves the layer out.
func fail(rc C.int, kernel, stage string, layer int, shapes string, args ...any) error {
	err := lastError(rc)
	if le, ok := err.(*libError); ok {
		le.text = strings.TrimPrefix(le.text, kernel+": ")
	}
	where := kernel
	if stage != "" {
		where += " (" + stage + ")"
	}
	if layer >= 0 {
		where += fmt.Sprintf(" layer %d", layer)
	}
	return &kernelError{where: where, shapes: fmt.Sprintf(shapes, args...), err: err}
}

// trace applies the tap's faults to stage st's output b (n rows of width w at pos0) on the
// device, then gathers the planned rows into staging for finish to record.
func (e *Engine) trace(tap *engine.Tap, st golden.Stage, layer, pos0, n, w int, b buf) error {
	if !tap.Active(st, layer) {
		return nil
	}
	if err := e.faults(tap, st, layer, pos0, n, w, b, nil); err != nil {
		return err
	}
	li := 0
	if st.Info().PerLayer {
		li = layer
	}
	list := e.lists[int(st)*e.c.NLayer+li]
	if list.n == 0 {
		return nil
	}
	dst, chunk, off, err := e.stage(list.n * w)
	if err != nil {
		return err
	}
	idx, err := view(e.ints, list.off, list.n)
	if err != nil {
		return err
	}
	if rc := C.greta_gather(b, C.int(w), idx, C.int(list.n), dst); rc != 0 {
		return fail(rc, "gather", st.String(), layer, "x [%d %d] rows %d", n, w, list.n)
	}
	sums, err := e.sketch(st, layer, e.staging[chunk].b, off, list.n, w)
	if err != nil {
		return err
	}
	e.pending = append(e.pending, pendingRows{st: st, layer: layer, pos0: pos0, w: w, list: list, chunk: chunk, off: off,
		sums: sums})
	return nil
}

// faults applies every fault of the tap that matches stage st at layer to the rows of b, in
// the tap's order, one launch per run of consecutive matching rows of b. rows maps b's rows
// to pass rows (nil: row i is pass row i). A row shift needs rows of earlier passes, which
// the device does not keep: it is refused.
func (e *Engine) faults(tap *engine.Tap, st golden.Stage, layer, pos0, n, w int, b buf, rows []int32) error {
	if tap == nil {
		return nil
	}
	// The kernel's GRETA_FAULT_* are engine.Kind's values: a difference does not compile.
	_ = [1]struct{}{}[(engine.Affine-C.GRETA_FAULT_AFFINE)|(engine.Zero-C.GRETA_FAULT_ZERO)|(engine.NaN-C.GRETA_FAULT_NAN)|
		(engine.Inf-C.GRETA_FAULT_INF)|(engine.Sign-C.GRETA_FAULT_SIGN)|(engine.RoundF16-C.GRETA_FAULT_ROUND_F16)|
		(engine.RoundBF16-C.GRETA_FAULT_ROUND_BF16)]
	pos := func(i int) int {
		if rows != nil {
			return pos0 + int(rows[i])
		}
		return pos0 + i
	}
	for _, f := range tap.Faults {
		ch0, nch := f.Channels(w)
		for i := 0; i < n; {
			if !f.Matches(st, layer, pos(i)) {
				i++
				continue
			}
			if f.Kind == engine.Shift {
				return fmt.Errorf("hip: fault %s: a row shift is not supported on the hip backend (it takes rows of earlier passes, which the device does not keep); plant it on the cpu backend", f)
			}
			j := i + 1
			for j < n && f.Matches(st, layer, pos(j)) {
				j++
			}
			if rc := C.greta_fault(b, C.int(w), C.int(i), C.int(j-i), C.int(ch0), C.int(nch), C.int(f.Kind),
				C.float(f.Scale), C.float(f.Add)); rc != 0 {
				return fail(rc, "fault", st.String(), layer, "x [%d %d] rows %d..%d channels %d..%d", n, w, i, j-1, ch0, ch0+nch-1)
			}
			i = j
		}
	}
	return nil
}

// stage returns room for count floats in a staging chunk.
func (e *Engine) stage(need int) (buf, int, int, error) {
	for i := range e.staging {
		s := &e.staging[i]
		if count(s.b)-s.used >= need {
			v, err := view(s.b, s.used, need)
			off := s.used
			s.used += need
			return v, i, off, err
		}
	}
	b, err := e.alloc("trace staging", max(need, stagingChunkLen))
	if err != nil {
		return b, 0, 0, err
	}
	h, err := e.allocHost("trace staging", count(b))
	if err != nil {
		return b, 0, 0, err
	}
	e.staging = append(e.staging, stagingChunk{b: b, host: h.floats(), used: need})
	v, err := view(b, 0, need)
	return v, len(e.staging) - 1, 0, err
}
