// Package trace turns the rows an engine computes into trace records: which rows to record
// (Plan, Selection), how to perturb them for fault injection (Fault), and the Tap an engine
// calls once per stage.
package trace

import "github.com/gretabisect/gretabisect/golden"

// Tap is what an engine calls after it computes a stage. A nil *Tap is valid and does
// nothing, so untraced runs pay one nil check per stage.
type Tap struct {
	Sel    *Selection // rows to record; nil records nothing
	Faults []Fault    // applied before recording, so everything downstream sees them
	// Sink receives each planned row. row is only valid during the call.
	Sink func(st golden.Stage, layer, pos int, row []float32)
	// SketchSink, when set, receives the planned rows a device backend hands over with
	// their sketch already computed (RecordSketched), so the sink need not compute it. It
	// may be called from several goroutines at once (row is only valid during the call).
	SketchSink func(st golden.Stage, layer, pos int, row []float32, sk *golden.Sketch)
}

// Rows hands over the output of stage st for n consecutive positions pos0..pos0+n-1, stored
// row-major with the given width. It applies the faults that match, in place, then records
// the planned rows. layer is the model layer (ignored for embed_out and logits).
func (t *Tap) Rows(st golden.Stage, layer, pos0, width int, data []float32) {
	if t == nil {
		return
	}
	n := len(data) / width
	for _, f := range t.Faults {
		if !f.matchesStage(st, layer) {
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
