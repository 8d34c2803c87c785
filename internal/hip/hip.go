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
	"sync"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/internal/engine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/trace"
)

func init() {
	engine.Register(Name, func(m *model.Model) (engine.Engine, error) { return New(m) })
}

// Engine runs one model on the GPU. It is not safe for concurrent use.
type Engine struct {
	c           model.Config
	device      string
	qDim, kvDim int
	allocs      []buf // everything Close frees

	// Weights, uploaded once. Wq, Wk, Wv are stacked into one (q+2kv, dim) matrix and
	// WGate, WUp into one (2ffn, dim) matrix: one product each, split by output segments.
	tokEmbd, output, outNorm buf
	layers                   []layerWeights
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

// sketchRun is a run of rows of one width, consecutive in a buffer, whose sketch sums are
// queued for one launch (greta_sketch); st and layer name its first rows.
type sketchRun struct {
	st               golden.Stage
	layer            int
	b                buf
	off, w, n, first int
}

// sketchSums is the number of float64 sums of one row's sketch (greta_sketch).
const sketchSums = C.GRETA_SKETCH_SUMS

// maxPassRows bounds the tokens of one pass: the kernels launch one grid row per token
// (at most 65535), and the activations grow with it.
const maxPassRows = 16384

type layerWeights struct {
	attnNorm, ffnNorm buf
	qkv, wo, gu, down buf
}

// rowList is a list of row indices (relative to the pass's first position) in ints.
type rowList struct{ off, n int }

type stagingChunk struct {
	b             buf
	host          []float32 // page-locked mirror
	used, flushed int       // elements written this pass, and copied back so far
}

// traceBatch is one flush's rows, on the host once the trace queue reaches its ticket.
// last marks the pass's final flush, which nothing on the device overlaps.
type traceBatch struct {
	ticket ticket
	rows   []recordRows
	last   bool
}

// recordRows are traced rows back on the host, for the recording goroutine.
type recordRows struct {
	st             golden.Stage
	layer, pos0, w int
	rows           []int32   // pass rows
	data           []float32 // len(rows) rows of width w
	sums           []float64 // len(rows) rows of sketchSums, or nil: the tap sketches
}

// pendingRows are rows gathered into a staging chunk, to copy back at the next flush.
type pendingRows struct {
	st             golden.Stage
	layer, pos0, w int
	list           rowList
	chunk, off     int
	sums           int // the first row's index in sums, or -1
}

const stagingChunkLen = 1 << 22 // elements

// New checks m (see checkModel), selects the device and uploads the weights.
func New(m *model.Model) (*Engine, error) {
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
	if err := e.upload(m.Weights); err != nil {
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

func (e *Engine) upload(w *model.Weights) error {
	c := e.c
	var err error
	if e.tokEmbd, err = e.put(w.TokEmbd.Name, w.TokEmbd.Data); err != nil {
		return err
	}
	e.output = e.tokEmbd
	if &w.Output.Data[0] != &w.TokEmbd.Data[0] {
		if e.output, err = e.put(w.Output.Name, w.Output.Data); err != nil {
			return err
		}
	}
	if e.outNorm, err = e.put("output_norm.weight", w.OutNorm); err != nil {
		return err
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
		} {
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

// Forward runs tokens at positions pos0.. in batched passes of up to 16384 tokens (one
// token: the decode route), extending the KV cache, and returns the logits of the last
// position, valid until the next call. Logits are computed for that position and the
// positions the tap plans.
func (e *Engine) Forward(tokens []int32, pos0 int, tap *trace.Tap) ([]float32, error) {
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
	if e.allocs == nil {
		return nil, fmt.Errorf("hip: engine is closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Passes of at most passRows tokens, of even size: every kernel computes a row the same
	// way whatever the rows beside it, so the split does not change a bit (the few-row
	// product of decode is kept for passes of at most GRETA_MATVEC_MAX_ROWS tokens, and
	// even passes never shrink a long prompt to that).
	passes := (n + e.passRows - 1) / e.passRows
	size := (n + passes - 1) / passes
	var logits []float32
	for off := 0; off < n; off += size {
		m := min(size, n-off)
		var err error
		if logits, err = e.pass(tokens[off:off+m], pos0+off, tap, off+m == n); err != nil {
			return nil, err
		}
	}
	return logits, nil
}

// pass runs tokens at positions pos0.. through the model in one batch. Logits are computed
// for the planned positions and, when last, for the last position, whose logits it returns.
func (e *Engine) pass(tokens []int32, pos0 int, tap *trace.Tap, last bool) ([]float32, error) {
	n := len(tokens)
	if err := e.grow(n); err != nil {
		return nil, err
	}
	if err := e.plan(tokens, pos0, tap, last); err != nil {
		return nil, err
	}
	e.startRecording(tap)
	err := e.forward(n, pos0, tap)
	var logits []float32
	if err == nil {
		logits, err = e.finish(n, pos0, tap)
	}
	if werr := e.waitRecording(); err == nil && werr != nil {
		err = fmt.Errorf("hip: forward of positions %d..%d: %w", pos0, pos0+n-1, werr)
	}
	if err != nil || logits == nil {
		return nil, err
	}
	e.last = append(e.last[:0], logits...) // the staging mirror is reused by the next pass
	return e.last, nil
}

// startRecording starts the goroutine that waits for each flush's copies and hands the
// rows to the tap, one batch per flush, in order. After an error it only spends the
// remaining tickets.
func (e *Engine) startRecording(tap *trace.Tap) {
	e.records = make(chan traceBatch, e.c.NLayer+2) // at most one batch per layer and one for embed_out
	e.recorded = make(chan error, 1)
	go func(in <-chan traceBatch, done chan<- error) {
		runtime.LockOSThread() // the library's error text is per thread
		defer runtime.UnlockOSThread()
		var failed error
		for batch := range in {
			err := batch.ticket.wait()
			if failed == nil && err != nil {
				failed = fmt.Errorf("copying traced rows back: %w", err)
			}
			if failed != nil {
				continue
			}
			parts := 1
			if batch.last {
				parts = min(max(runtime.GOMAXPROCS(0)/4, 1), 8)
			}
			handOver(tap, batch.rows, parts)
		}
		done <- failed
	}(e.records, e.recorded)
}

// handOver gives a copy's rows to the tap, in order. Rows with device sketches go to
// SketchSink, which may run on several goroutines at once: with parts > 1 they are shared
// out in contiguous runs of about equal size, so the sink's copies of the final rows take
// more than one core. That reorders them, and the recorder then sorts: only the final
// flush's rows are worth it.
func handOver(tap *trace.Tap, batch []recordRows, parts int) {
	type row struct {
		r *recordRows
		j int
	}
	var sketched []row
	total := 0
	for i := range batch {
		r := &batch[i]
		for j, pr := range r.rows {
			pos := r.pos0 + int(pr)
			switch {
			case r.sums == nil:
				tap.Record(r.st, r.layer, pos, r.w, r.data[j*r.w:(j+1)*r.w])
			case tap.Want(r.st, r.layer, pos):
				sketched = append(sketched, row{r, j})
				total += r.w
			}
		}
	}
	record := func(rows []row) {
		for _, x := range rows {
			r, j := x.r, x.j
			s := r.sums[j*sketchSums : (j+1)*sketchSums]
			sk, err := golden.SketchFromSums(r.w, s[golden.SketchProjections], s[golden.SketchProjections+1],
				(*[golden.SketchProjections]float64)(s))
			if err != nil {
				sk = nil // the recorder sketches the row itself
			}
			tap.RecordSketched(r.st, r.layer, r.pos0+int(r.rows[j]), r.data[j*r.w:(j+1)*r.w], sk)
		}
	}
	if parts <= 1 {
		record(sketched)
		return
	}
	var wg sync.WaitGroup
	lo, acc, started := 0, 0, 0
	for i, x := range sketched {
		acc += x.r.w
		if acc*parts >= total*(started+1) || i == len(sketched)-1 {
			run := sketched[lo : i+1]
			wg.Go(func() { record(run) })
			lo, started = i+1, started+1
		}
	}
	wg.Wait()
}

// waitRecording waits until every row handed over has been recorded.
func (e *Engine) waitRecording() error {
	close(e.records)
	return <-e.recorded
}

// flush queues the copies of the rows gathered since the last flush (and of their sketch
// sums) on the trace queue and hands them to the recording goroutine with a ticket; last
// marks the pass's final flush.
func (e *Engine) flush(last bool) error {
	if len(e.pending) == 0 {
		return nil
	}
	if err := e.launchSketches(); err != nil {
		return err
	}
	if err := traceFence(); err != nil {
		return fmt.Errorf("hip: copying traced rows back: %w", err)
	}
	for i := range e.staging {
		s := &e.staging[i]
		if s.used > s.flushed {
			v, err := view(s.b, s.flushed, s.used-s.flushed)
			if err == nil {
				err = traceDownload(s.host[s.flushed:s.used], v)
			}
			if err != nil {
				return fmt.Errorf("hip: copying traced rows back: %w", err)
			}
			s.flushed = s.used
		}
	}
	if e.sumsUsed > e.sumsFlush {
		v, err := view(e.sums, 2*e.sumsFlush*sketchSums, 2*(e.sumsUsed-e.sumsFlush)*sketchSums)
		if err == nil {
			err = traceDownloadFloat64(e.sumsHost.float64s()[e.sumsFlush*sketchSums:e.sumsUsed*sketchSums], v)
		}
		if err != nil {
			return fmt.Errorf("hip: copying sketch sums back: %w", err)
		}
		e.sumsFlush = e.sumsUsed
	}
	t, err := traceTicket()
	if err != nil {
		return fmt.Errorf("hip: copying traced rows back: %w", err)
	}
	batch := traceBatch{ticket: t, rows: make([]recordRows, len(e.pending)), last: last}
	for i, p := range e.pending {
		r := recordRows{st: p.st, layer: p.layer, pos0: p.pos0, w: p.w,
			rows: e.hostInts[p.list.off : p.list.off+p.list.n],
			data: e.staging[p.chunk].host[p.off : p.off+p.list.n*p.w]}
		if p.sums >= 0 {
			r.sums = e.sumsHost.float64s()[p.sums*sketchSums : (p.sums+p.list.n)*sketchSums]
		}
		batch.rows[i] = r
	}
	e.pending = e.pending[:0]
	e.records <- batch
	return nil
}

// sketch queues the sketch sums of n rows of width w, at element off of b, into the next
// rows of sums and returns the index of the first, or -1 when the tap sketches rows itself.
// Rows of one width that follow each other in b (the stages of a layer, gathered one after
// the other) share one launch: the launch lasts as long as one row's chains, however many
// rows it holds.
func (e *Engine) sketch(st golden.Stage, layer int, b buf, off, n, w int) (int, error) {
	if !e.sketching {
		return -1, nil
	}
	first := e.sumsUsed
	if first+n > e.sumsCap {
		return -1, fmt.Errorf("hip: sketch sums of %s layer %d: %d rows past the %d planned", st, layer, first+n, e.sumsCap)
	}
	r := &e.run
	if r.n == 0 || r.w != w || r.b != b || r.off+r.n*w != off {
		if err := e.launchSketches(); err != nil {
			return -1, err
		}
		*r = sketchRun{st: st, layer: layer, b: b, off: off, w: w, first: first}
	}
	r.n += n
	e.sumsUsed += n
	return first, nil
}

// launchSketches launches the queued sketch sums on the trace queue, after a fence: the
// rows come from the main queue.
func (e *Engine) launchSketches() error {
	r := &e.run
	if r.n == 0 {
		return nil
	}
	if err := traceFence(); err != nil {
		return fmt.Errorf("hip: sketch sums of %s layer %d: %w", r.st, r.layer, err)
	}
	coef, ok := e.coefs[r.w]
	if !ok {
		var err error
		if coef, err = e.uploadCoefficients(r.w); err != nil {
			return err
		}
		if e.coefs == nil {
			e.coefs = map[int]buf{}
		}
		e.coefs[r.w] = coef
	}
	x, err1 := view(r.b, r.off, r.n*r.w)
	out, err2 := view(e.sums, 2*r.first*sketchSums, 2*r.n*sketchSums)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("hip: sketch sums of %s layer %d: %w", r.st, r.layer, err)
	}
	if rc := C.greta_sketch(x, C.int(r.n), C.int(r.w), coef, out); rc != 0 {
		return fail(rc, "sketch", r.st.String(), r.layer, "x [%d %d] coef [%d %d]", r.n, r.w, r.w, golden.SketchProjections)
	}
	r.n = 0
	return nil
}

// uploadCoefficients uploads golden's sketch coefficients for rows of width w, widened to
// float64 (exactly) as greta_sketch reads them.
func (e *Engine) uploadCoefficients(w int) (buf, error) {
	c := golden.SketchCoefficients(w)
	wide := make([]float64, len(c))
	for i, v := range c {
		wide[i] = float64(v)
	}
	what := fmt.Sprintf("sketch coefficients (%d)", w)
	b, err := e.alloc(what, 2*len(wide))
	if err != nil {
		return b, err
	}
	if err := uploadFloat64(b, wide); err != nil {
		return b, fmt.Errorf("hip: uploading %s: %w", what, err)
	}
	return b, nil
}

// planSums makes room in sums for rows rows of sketch sums this pass.
func (e *Engine) planSums(tap *trace.Tap, rows int) error {
	e.sketching = tap.TakesSketches()
	e.sumsUsed, e.sumsFlush, e.run.n = 0, 0, 0
	if !e.sketching || rows <= e.sumsCap {
		return nil
	}
	if err := e.release(e.sums); err != nil {
		return err
	}
	if err := e.releaseHost(e.sumsHost); err != nil {
		return err
	}
	e.sumsCap = 0
	b, err := e.alloc("sketch sums", 2*rows*sketchSums)
	if err != nil {
		return err
	}
	h, err := e.allocHost("sketch sums", 2*rows*sketchSums)
	if err != nil {
		return err
	}
	e.sums, e.sumsHost, e.sumsCap = b, h, rows
	return nil
}

// plan uploads the tokens and, for every traced stage, the rows the tap wants, in one copy.
// The rows that get logits are the planned ones and, when last, the last one.
func (e *Engine) plan(tokens []int32, pos0 int, tap *trace.Tap, last bool) error {
	c, n := e.c, len(tokens)
	e.hostInts = append(e.hostInts[:0], tokens...)
	e.lists = e.lists[:0]
	for range golden.NumStages * c.NLayer {
		e.lists = append(e.lists, rowList{})
	}
	e.pending = e.pending[:0]
	for i := range e.staging {
		e.staging[i].used, e.staging[i].flushed = 0, 0
	}
	// Only selected positions can be wanted: the lists filter those of this pass, not every
	// row of a long prompt.
	cand := e.candidates[:0]
	if tap != nil && tap.Sel != nil {
		for _, p := range tap.Sel.Positions() {
			if p >= pos0 && p < pos0+n {
				cand = append(cand, int32(p-pos0))
			}
		}
	}
	e.candidates = cand
	// addList appends the rows i of cand where want(i), reusing the previous list when equal.
	var prev rowList
	addList := func(want func(i int) bool) rowList {
		start := len(e.hostInts)
		for _, i := range cand {
			if want(int(i)) {
				e.hostInts = append(e.hostInts, i)
			}
		}
		l := rowList{off: start, n: len(e.hostInts) - start}
		if l.n > 0 && prev.n == l.n && equalInts(e.hostInts[prev.off:prev.off+prev.n], e.hostInts[start:]) {
			e.hostInts = e.hostInts[:start]
			return prev
		}
		if l.n > 0 {
			prev = l
		}
		return l
	}
	for _, info := range golden.Stages() {
		st := info.Stage
		for l := range c.NLayer {
			layer := l
			if !info.PerLayer {
				layer = golden.LayerOf(st, -1, c.NLayer)
				if l > 0 {
					break
				}
			}
			if st == golden.Logits || !tap.Active(st, layer) {
				continue
			}
			e.lists[int(st)*c.NLayer+l] = addList(func(i int) bool { return tap.Want(st, layer, pos0+i) })
		}
	}
	if last && (len(cand) == 0 || cand[len(cand)-1] != int32(n-1)) {
		e.candidates = append(cand, int32(n-1)) // the last row always gets logits
		cand = e.candidates
	}
	e.logitRowsList = addList(func(i int) bool {
		return (last && i == n-1) || tap.Want(golden.Logits, c.NLayer, pos0+i)
	})

	rows := e.logitRowsList.n
	for _, l := range e.lists {
		rows += l.n
	}
	if err := e.planSums(tap, rows); err != nil {
		return err
	}

	if len(e.hostInts) > e.intsCap {
		if err := e.release(e.ints); err != nil {
			return err
		}
		e.intsCap = 0
		b, err := e.alloc("token and row lists", len(e.hostInts))
		if err != nil {
			return err
		}
		e.ints, e.intsCap = b, len(e.hostInts)
	}
	if err := uploadInts(e.ints, e.hostInts); err != nil {
		return fmt.Errorf("hip: uploading %d tokens: %w", n, err)
	}
	return nil
}

func equalInts(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// forward launches the model's kernels for n tokens at pos0. Read it top to bottom: it is
// the model, one trace call per stage.
func (e *Engine) forward(n, pos0 int, tap *trace.Tap) error {
	c := e.c
	dim, ffn, qd, kvd := c.Dim, c.FFNDim, e.qDim, e.kvDim
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
	for l := range c.NLayer {
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
			seg(e.q, qd), seg(k, kvd), seg(v, kvd)); err != nil {
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

func seg(b buf, width int) C.greta_seg {
	return C.greta_seg{buf: b, ld: C.int32_t(width), cols: C.int32_t(width)}
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

func (e *Engine) rope(stage string, layer int, x buf, n, heads, pos0 int) error {
	c := e.c
	if rc := C.greta_rope(x, C.int(n), C.int(heads), C.int(c.HeadDim), C.int(c.RopeDim), C.int(pos0),
		C.double(c.RopeBase)); rc != 0 {
		return fail(rc, "rope", stage, layer, "x [%d %d] pos %d..%d rope_dim %d", n, heads*c.HeadDim, pos0, pos0+n-1,
			c.RopeDim)
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

// trace applies the tap's faults to stage st's output b (n rows of width w at pos0) on the
// device, then gathers the planned rows into staging for finish to record.
func (e *Engine) trace(tap *trace.Tap, st golden.Stage, layer, pos0, n, w int, b buf) error {
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
// to pass rows (nil: row i is pass row i).
func (e *Engine) faults(tap *trace.Tap, st golden.Stage, layer, pos0, n, w int, b buf, rows []int32) error {
	if tap == nil {
		return nil
	}
	pos := func(i int) int {
		if rows != nil {
			return pos0 + int(rows[i])
		}
		return pos0 + i
	}
	for _, f := range tap.Faults {
		for i := 0; i < n; {
			if !f.Matches(st, layer, pos(i)) {
				i++
				continue
			}
			j := i + 1
			for j < n && f.Matches(st, layer, pos(j)) {
				j++
			}
			if rc := C.greta_fault(b, C.int(w), C.int(i), C.int(j-i), C.float(f.Scale), C.float(f.Add)); rc != 0 {
				return fail(rc, "fault", st.String(), layer, "x [%d %d] rows %d..%d", n, w, i, j-1)
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

// finish computes the final norm and the logits of the rows that need them into staging,
// applies the logits faults, flushes and returns the last row's logits, valid once the
// recording goroutine is done.
func (e *Engine) finish(n, pos0 int, tap *trace.Tap) ([]float32, error) {
	c := e.c
	rows := e.hostInts[e.logitRowsList.off : e.logitRowsList.off+e.logitRowsList.n]
	r := len(rows)
	if r == 0 { // a pass before the last with no planned logits
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
