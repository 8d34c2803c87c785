package engine

import (
	"fmt"
	"math"

	"github.com/gretabisect/gretabisect/golden"
)

// AnyLayer in Fault.Layer matches every layer.
const AnyLayer = -2

// Kind is what a fault does to each element it touches.
type Kind uint8

// The fault kinds. The zero Kind is Affine, so a Fault literal with only Scale and Add set
// means what it always did.
const (
	Affine    Kind = iota // x*Scale + Add, rounded after each operation (never fused)
	Zero                  // +0: a write that never happened
	NaN                   // a quiet NaN
	Inf                   // +Inf
	Sign                  // -x (the sign bit flipped)
	RoundF16              // x rounded to half precision, ties to even (golden.RoundF16)
	RoundBF16             // x rounded to bfloat16, ties to even (golden.RoundBF16)
	Shift                 // the row at position p takes the clean row of position p-Shift
	numKinds
)

// Fault perturbs the output rows of one stage inside the forward pass, identically on every
// backend and route: a Tap applies it on the CPU, internal/hip on the device.
//
// It touches the rows of Stage at Layer whose position p lies in PosMin..PosMax and, when
// Every > 0, has p % Every == Phase; within a row, the channels ChLo..ChLo+ChLen-1 (all of
// them when ChLen is 0), or the heads HeadLo..HeadLo+HeadLen-1 in units of the model's
// head_dim, which ResolveFaults turns into channels.
type Fault struct {
	Stage  golden.Stage
	Layer  int // a model layer, or AnyLayer; ignored for embed_out and logits
	PosMin int // first position affected
	PosMax int // last position affected; -1 for no bound
	Every  int // a period: only positions p with p % Every == Phase; 0 for every position
	Phase  int

	HeadLo, HeadLen int // heads; HeadLen 0 for none (resolved into channels by ResolveFaults)
	ChLo, ChLen     int // channels; ChLen 0 for every channel

	Kind  Kind
	Scale float32 // Affine
	Add   float32 // Affine
	Shift int     // Shift: how many positions back the row comes from (>= 1)
}

func (f Fault) matchesStage(st golden.Stage, layer int) bool {
	if f.Stage != st {
		return false
	}
	return !st.Info().PerLayer || f.Layer == AnyLayer || f.Layer == layer
}

func (f Fault) matchesPos(pos int) bool {
	return pos >= f.PosMin && (f.PosMax < 0 || pos <= f.PosMax) && (f.Every == 0 || pos%f.Every == f.Phase)
}

// Matches reports whether f perturbs the row of stage st at (layer, pos).
func (f Fault) Matches(st golden.Stage, layer, pos int) bool {
	return f.matchesStage(st, layer) && f.matchesPos(pos)
}

// Channels returns the channels f touches in a row of width w: lo and the count. Heads must
// have been resolved (ResolveFaults); Apply and the device rely on it.
func (f Fault) Channels(w int) (lo, n int) {
	if f.HeadLen > 0 {
		panic(fmt.Sprintf("trace: fault %s applied before ResolveFaults turned its heads into channels", f))
	}
	if f.ChLen == 0 {
		return 0, w
	}
	return f.ChLo, f.ChLen
}

// Apply perturbs the channels f touches in row, in place. A Shift fault needs the earlier
// row: Tap.Rows applies it.
func (f Fault) Apply(row []float32) {
	lo, n := f.Channels(len(row))
	x := row[lo : lo+n]
	switch f.Kind {
	case Affine:
		for i, v := range x {
			x[i] = float32(v*f.Scale) + f.Add
		}
	case Zero:
		clear(x)
	case NaN:
		for i := range x {
			x[i] = math.Float32frombits(0x7fc00000)
		}
	case Inf:
		for i := range x {
			x[i] = float32(math.Inf(1))
		}
	case Sign:
		for i, v := range x {
			x[i] = math.Float32frombits(math.Float32bits(v) ^ 0x80000000)
		}
	case RoundF16:
		for i, v := range x {
			x[i] = golden.RoundF16(v)
		}
	case RoundBF16:
		for i, v := range x {
			x[i] = golden.RoundBF16(v)
		}
	}
}

// ResolveFaults checks faults against a model and returns them with heads turned into
// channels: headDim is the model's head_dim and width(st) the row width of stage st. A
// fault whose channels do not fit its stage's rows is refused, naming the fault.
func ResolveFaults(faults []Fault, headDim int, width func(golden.Stage) int) ([]Fault, error) {
	out := make([]Fault, len(faults))
	for i, f := range faults {
		w := width(f.Stage)
		g := f
		what := fmt.Sprintf("channels %d..%d", f.ChLo, f.ChLo+f.ChLen-1)
		if f.HeadLen > 0 {
			g.ChLo, g.ChLen, g.HeadLo, g.HeadLen = f.HeadLo*headDim, f.HeadLen*headDim, 0, 0
			what = fmt.Sprintf("heads %s (channels %d..%d at head_dim %d)", spanText(f.HeadLo, f.HeadLen), g.ChLo, g.ChLo+g.ChLen-1, headDim)
		}
		if g.ChLo+g.ChLen > w {
			return nil, fmt.Errorf("fault %d (%s): %s outside the %d channels of %s%s",
				i+1, f, what, w, f.Stage, headsOf(w, headDim))
		}
		out[i] = g
	}
	return out, nil
}

// headsOf says how many heads a row of width w holds, when it holds whole heads.
func headsOf(w, headDim int) string {
	if headDim <= 0 || w%headDim != 0 {
		return ""
	}
	return fmt.Sprintf(" (%d heads of %d)", w/headDim, headDim)
}

// spanText writes lo..lo+n-1, or lo alone when n is 1.
func spanText(lo, n int) string {
	if n == 1 {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d..%d", lo, lo+n-1)
}
