package trace

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
)

// marked returns a sketch of n elements that no row has, so a test can tell it was kept.
func marked(n int) *golden.Sketch {
	sk, err := golden.SketchFromSums(n, 4, 123, &[golden.SketchProjections]float64{7})
	if err != nil {
		panic(err)
	}
	return sk
}

func TestRecordSketchedRoutes(t *testing.T) {
	sel := engine.NewSelection([]golden.Stage{golden.AttnIn}, []int{0}, 1, []int{1}, 3)
	type call struct {
		Pos    int
		Sketch bool
	}
	tests := []struct {
		name   string
		sketch bool // the tap has a SketchSink
		pos    int
		want   []call
	}{
		{"to SketchSink", true, 1, []call{{1, true}}},
		{"to Sink without a SketchSink", false, 1, []call{{1, false}}},
		{"unplanned position", true, 2, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []call
			tap := &engine.Tap{Sel: sel, Sink: func(st golden.Stage, layer, pos int, row []float32) {
				got = append(got, call{pos, false})
			}}
			if tc.sketch {
				tap.SketchSink = func(st golden.Stage, layer, pos int, row []float32, sk *golden.Sketch) {
					got = append(got, call{pos, sk != nil})
				}
			}
			if tap.TakesSketches() != tc.sketch {
				t.Errorf("TakesSketches() = %v, want %v", tap.TakesSketches(), tc.sketch)
			}
			tap.RecordSketched(golden.AttnIn, 0, tc.pos, []float32{1, 2}, marked(2))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
	var nilTap *engine.Tap
	nilTap.RecordSketched(golden.AttnIn, 0, 1, []float32{1}, nil) // must not panic
}

func TestRecorderKeepsHandedSketch(t *testing.T) {
	row := []float32{1, -2, 3}
	tests := []struct {
		name string
		sk   *golden.Sketch
		want *golden.Sketch
	}{
		{"kept", marked(3), marked(3)},
		{"nil: computed", nil, golden.NewSketch(row)},
		{"other length: computed", marked(4), golden.NewSketch(row)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRecorder("p", 2, 1, "")
			r.SinkSketched(golden.AttnIn, 0, 0, row, tc.sk)
			recs, err := r.Close()
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			if diff := cmp.Diff(tc.want, recs[0].Sketch); diff != "" {
				t.Errorf("sketch (-want +got):\n%s", diff)
			}
			if recs[0].Hash != golden.HashRow(row) {
				t.Errorf("hash %s, want the row's %s", recs[0].Hash, golden.HashRow(row))
			}
		})
	}
}
