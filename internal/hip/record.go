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
	"sync"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
)

// Tracing beside the forward pass: plan lists the rows each traced stage hands over, flush
// queues their copies (and their sketch sums, sketch) on the trace queue, and a recording
// goroutine waits for each copy and hands the rows to the tap, so the launching thread
// never waits for the device.

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

// rowList is a list of row indices (relative to the pass's first position) in ints.
type rowList struct{ off, n int }

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

// startRecording starts the goroutine that waits for each flush's copies and hands the
// rows to the tap, one batch per flush, in order. After an error it only spends the
// remaining tickets.
func (e *Engine) startRecording(tap *engine.Tap) {
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
func handOver(tap *engine.Tap, batch []recordRows, parts int) {
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
// rows come from the main queue, and so do a width's coefficients the first time. The fence
// follows their upload: a copy from pageable memory may return before its data lands, and
// only the main queue is ordered after it (sketches of the first rows of a width were read
// from half-written coefficients, while their rows and hashes were right).
func (e *Engine) launchSketches() error {
	r := &e.run
	if r.n == 0 {
		return nil
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
	if err := traceFence(); err != nil {
		return fmt.Errorf("hip: sketch sums of %s layer %d: %w", r.st, r.layer, err)
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
func (e *Engine) planSums(tap *engine.Tap, rows int) error {
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

// plan uploads the pass's tokens (none for a replay) and, for every traced stage of the
// layers it runs, the rows the tap wants, in one copy. When the pass reaches the logits,
// the rows that get them are the planned ones and, when s.WantLast, the last one.
func (e *Engine) plan(s driver.Span, tap *engine.Tap) error {
	c, n, pos0 := e.c, s.N, s.Pos0
	e.hostInts = append(e.hostInts[:0], s.Tokens...)
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
			runs := s.Tokens != nil // embed_out
			if info.PerLayer {
				runs = l >= s.Lo && l <= s.Hi
			}
			if st == golden.Logits || !runs || !tap.Active(st, layer) {
				continue
			}
			e.lists[int(st)*c.NLayer+l] = addList(func(i int) bool { return tap.Want(st, layer, pos0+i) })
		}
	}
	if s.WantLast && (len(cand) == 0 || cand[len(cand)-1] != int32(n-1)) {
		e.candidates = append(cand, int32(n-1)) // the last row always gets logits
		cand = e.candidates
	}
	e.logitRowsList = rowList{}
	if s.Hi == c.NLayer {
		e.logitRowsList = addList(func(i int) bool {
			return (s.WantLast && i == n-1) || tap.Want(golden.Logits, c.NLayer, pos0+i)
		})
	}

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
		return fmt.Errorf("hip: uploading the tokens and row lists of positions %d..%d: %w", pos0, pos0+n-1, err)
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
