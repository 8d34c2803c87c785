package trace

import "github.com/gretabisect/gretabisect/golden"

// AnyLayer in Fault.Layer matches every layer.
const AnyLayer = -2

// Fault perturbs the output rows of one stage inside the forward pass: every element x of a
// matching row becomes x*Scale + Add, rounded after each operation (never fused), so every
// backend perturbs to the same bits.
type Fault struct {
	Stage  golden.Stage
	Layer  int // a model layer, or AnyLayer; ignored for embed_out and logits
	PosMin int // first position affected
	PosMax int // last position affected; -1 for no bound
	Scale  float32
	Add    float32
}

func (f Fault) matchesStage(st golden.Stage, layer int) bool {
	if f.Stage != st {
		return false
	}
	return !st.Info().PerLayer || f.Layer == AnyLayer || f.Layer == layer
}

func (f Fault) matchesPos(pos int) bool {
	return pos >= f.PosMin && (f.PosMax < 0 || pos <= f.PosMax)
}

// Matches reports whether f perturbs the row of stage st at (layer, pos).
func (f Fault) Matches(st golden.Stage, layer, pos int) bool {
	return f.matchesStage(st, layer) && f.matchesPos(pos)
}

// Apply perturbs row in place.
func (f Fault) Apply(row []float32) {
	for i, x := range row {
		row[i] = float32(x*f.Scale) + f.Add
	}
}
