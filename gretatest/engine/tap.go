package engine

import "github.com/gretabisect/gretabisect/golden"

// Tap is what an engine calls after it computes a stage. A nil *Tap is valid and does
// nothing, so untraced runs pay one nil check per stage. Rows is called from one goroutine
// at a time, positions ascending for each stage and layer (as a forward pass computes them).
type Tap struct {
	Sel    *Selection // rows to record; nil records nothing
	Faults []Fault    // applied before recording, so everything downstream sees them; heads resolved (ResolveFaults)
	// Sink receives each planned row. row is only valid during the call.
	Sink func(st golden.Stage, layer, pos int, row []float32)
	// SketchSink, when set, receives the planned rows a device backend hands over with
	// their sketch already computed (RecordSketched), so the sink need not compute it. It
	// may be called from several goroutines at once (row is only valid during the call).
	SketchSink func(st golden.Stage, layer, pos int, row []float32, sk *golden.Sketch)

	shifts map[shiftKey]*shiftRows // the earlier rows each Shift fault takes, per layer
}

// shiftKey names the rows one Shift fault keeps: the fault's index in Faults and the layer.
type shiftKey struct{ fault, layer int }

// shiftRows holds the clean rows of the last K positions a Shift fault saw, slot pos % K,
// so a row's source is found however the positions were split into calls.
type shiftRows struct {
	pos  []int       // the position each slot holds, -1 for none
	rows [][]float32 // clean rows
}

// Rows hands over the output of stage st for n consecutive positions pos0..pos0+n-1, stored
// row-major with the given width. It applies the faults that match, in place and in order,
// then records the planned rows. layer is the model layer (ignored for embed_out and logits).
func (t *Tap) Rows(st golden.Stage, layer, pos0, width int, data []float32) {
	if t == nil {
		return
	}
	n := len(data) / width
	for fi, f := range t.Faults {
		if !f.matchesStage(st, layer) {
			continue
		}
		if f.Kind == Shift {
			t.shift(fi, f, layer, pos0, width, data)
			continue
		}
		for i := 0; i < n; i++ {
			if f.matchesPos(pos0 + i) {
				f.Apply(data[i*width : (i+1)*width])
			}
		}
	}
	t.Record(st, layer, pos0, width, data)
}

// shift applies Shift fault f (index fi in Faults) to n rows at pos0: the channels f touches
// of each matching row at p >= K take those of the clean row at p-K, from this call's rows
// or from the ones kept from earlier calls. A source never seen leaves the row as it is.
func (t *Tap) shift(fi int, f Fault, layer, pos0, width int, data []float32) {
	k, n := f.Shift, len(data)/width
	if t.shifts == nil {
		t.shifts = map[shiftKey]*shiftRows{}
	}
	key := shiftKey{fi, layer}
	h := t.shifts[key]
	if h == nil {
		h = &shiftRows{pos: make([]int, k), rows: make([][]float32, k)}
		for i := range h.pos {
			h.pos[i] = -1
		}
		t.shifts[key] = h
	}
	// The clean rows the next calls need, taken before this call's rows change.
	keep := make([][]float32, 0, min(n, k))
	for i := max(n-k, 0); i < n; i++ {
		keep = append(keep, append([]float32(nil), data[i*width:(i+1)*width]...))
	}
	lo, c := f.Channels(width)
	// Last row first: a source row in this call is then still clean when it is read.
	for i := n - 1; i >= 0; i-- {
		p := pos0 + i
		if p < k || !f.matchesPos(p) {
			continue
		}
		var src []float32
		if j := i - k; j >= 0 {
			src = data[j*width : (j+1)*width]
		} else if slot := (p - k) % k; h.pos[slot] == p-k {
			src = h.rows[slot]
		}
		if src != nil {
			copy(data[i*width+lo:i*width+lo+c], src[lo:lo+c])
		}
	}
	for j, row := range keep {
		p := pos0 + max(n-k, 0) + j
		h.pos[p%k], h.rows[p%k] = p, row
	}
}

// Record records the planned rows of data without applying faults: a device backend applies
// faults on the device and copies back only the rows Want asks for.
func (t *Tap) Record(st golden.Stage, layer, pos0, width int, data []float32) {
	if t == nil || t.Sel == nil || t.Sink == nil {
		return
	}
	n := len(data) / width
	for i := 0; i < n; i++ {
		if t.Sel.Want(st, layer, pos0+i) {
			t.Sink(st, layer, pos0+i, data[i*width:(i+1)*width])
		}
	}
}

// TakesSketches reports whether the tap accepts precomputed sketches (RecordSketched):
// a device backend computes them only then.
func (t *Tap) TakesSketches() bool { return t != nil && t.SketchSink != nil }

// RecordSketched records row, the output of stage st at (layer, pos), when it is planned,
// with sk, its sketch (bit-identical to golden.NewSketch(row)). Without a SketchSink the
// row goes to Sink and the sketch is dropped.
func (t *Tap) RecordSketched(st golden.Stage, layer, pos int, row []float32, sk *golden.Sketch) {
	if !t.Want(st, layer, pos) {
		return
	}
	if t.SketchSink != nil {
		t.SketchSink(st, layer, pos, row, sk)
		return
	}
	t.Sink(st, layer, pos, row)
}

// Want reports whether the row of stage st at (layer, pos) is planned.
func (t *Tap) Want(st golden.Stage, layer, pos int) bool {
	return t != nil && t.Sel != nil && t.Sink != nil && t.Sel.Want(st, layer, pos)
}

// Active reports whether stage st at layer needs a callback at all (a planned row or a fault
// anywhere in it): engines use it to skip copying rows nobody asked for.
func (t *Tap) Active(st golden.Stage, layer int) bool {
	if t == nil {
		return false
	}
	for _, f := range t.Faults {
		if f.matchesStage(st, layer) {
			return true
		}
	}
	return t.Sel != nil && t.Sink != nil && t.Sel.WantAny(st, layer)
}

// WithFaults returns a tap that applies faults (heads resolved: ResolveFaults) to the rows
// handed over, before t's own, and records and plans as t does. An engine that wraps another
// plants a bug this way, for a rehearsal of what a bisect finds. A Shift fault keeps the
// rows it needs in the tap: keep the returned tap for the whole run (every Forward call of
// one prompt) rather than deriving one per call.
func (t *Tap) WithFaults(faults ...Fault) *Tap {
	u := &Tap{Faults: faults}
	if t != nil {
		u.Sel, u.Sink, u.SketchSink = t.Sel, t.Sink, t.SketchSink
		u.Faults = append(append([]Fault(nil), faults...), t.Faults...)
	}
	return u
}
