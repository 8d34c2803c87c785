package ownerr

import (
	"fmt"
	"math"
	"slices"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/internal/model"
)

// Unit is float32's unit roundoff, 2^-24: the relative error of one rounding.
const Unit = 0x1p-24

// DefaultC is the constant of DefaultFloor. See DefaultFloor for how it was measured.
const DefaultC = 2

// Factor is how far above its floor a row's own error must be to fail: the replay policy's
// threshold is Factor x floor. See the package documentation for the measurements behind it.
const Factor = 4

// ReductionLength is K of DefaultFloor: the number of terms summed, along the chain of
// operations from the layer's input to stage st at position pos, for one element of its
// row. A stage whose computation sums nothing (residual_pre_attn, a copy) counts 1.
//
//	attn_in            dim                       (sum of squares of RMSNorm)
//	q/k_pre_rope, v    2 dim                     (+ the projection's dot product)
//	q/k_post_rope      2 dim + 2                 (+ the rotation: two products summed)
//	attn_ctx           2 dim + 2 + hd + 2(p+1)   (+ the scores, the softmax sum and the weighted sum of p+1 values)
//	attn_out           ... + q_dim               (+ the output projection)
//	residual_post_attn ... + 1                   (+ the add)
//	ffn_norm_in        ... + dim
//	mlp_out            ... + 2 dim + ffn         (+ the gate and up products, then the down product)
//	residual_post_mlp  ... + 1
//	logits             2 dim                     (final norm and output projection, from the last residual)
//	embed_out          1                         (a copy)
func ReductionLength(c model.Config, st golden.Stage, pos int) int {
	qDim := c.NHead * c.HeadDim
	k := 0
	for s := golden.ResidualPreAttn; s <= st && st != golden.Logits; s++ {
		switch s {
		case golden.AttnIn, golden.FFNNormIn:
			k += c.Dim
		case golden.QPreRope:
			k += c.Dim
		case golden.QPostRope:
			k += 2
		case golden.AttnCtx:
			k += c.HeadDim + 2*(pos+1)
		case golden.AttnOut:
			k += qDim
		case golden.ResidualPostAttn, golden.ResidualPostMLP:
			k++
		case golden.MLPOut:
			k += 2*c.Dim + c.FFNDim
		}
	}
	if st == golden.Logits {
		k = 2 * c.Dim
	}
	return max(k, 1)
}

// DefaultFloor is the noise floor of stage st at position pos when no measured floor
// exists: DefaultC * Unit * sqrt(K), K = ReductionLength(c, st, pos).
//
// Reasoning: a float32 sum of K terms carries one rounding error of about Unit * |partial
// sum| per term; the errors are independent and largely cancel, so for a fixed order the
// error of the sum grows like sqrt(K) (K the worst case), and errors of the operations
// chained in a layer add in quadrature: sqrt of the sum of their lengths. The reference
// sums in 16 lanes, about Unit * sqrt(K) / 5.7 relative; a sequential float32 sum, as one
// GPU thread per output element does, about Unit * sqrt(K/2), four times that.
// Measured on the tiny model (the float64-accumulating candidate, whose own error is the
// reference's rounding), the own error stays below 0.16 Unit sqrt(K) at every stage but
// attn_ctx and attn_out, which reach 0.51 (a softmax turns the scores' absolute errors into
// relative errors of the weights). DefaultC = 2 puts that at a quarter of the floor, and a
// device with sequential sums (about 0.75 Unit sqrt(K), 2 at attn_ctx) within the floor or
// just above it, far below Factor x the floor. A measured floor (noise.json) replaces the
// default wherever it exists.
func DefaultFloor(c model.Config, st golden.Stage, pos int) float64 {
	return DefaultC * Unit * math.Sqrt(float64(ReductionLength(c, st, pos)))
}

// Floor is the noise floor of one (stage, layer): the worst own error a correct backend
// showed there, over every position of every calibration prompt.
type Floor struct {
	Stage golden.Stage
	Layer int
	RelL2 float64 // the worst own error's rel_l2: the floor
	MAE   float64 // the worst own error's MAE, for information
	N     int     // own errors measured
}

// Floors are the measured noise floors of one backend (device) against the reference on
// one model: noise.json next to the device's goldens. The zero value (or nil) holds none:
// every lookup falls back to DefaultFloor.
type Floors struct {
	Device    string   // the calibrated backend's device ("cpu-f64acc", "hip-gfx942")
	Reference string   // the reference's device ("cpu")
	Model     string   // the model's name ("tiny")
	Method    string   // how own errors were measured: MethodReplay or MethodPerOp
	Prompts   []string // the calibration prompts, in order
	Floors    []Floor  // causal order: by layer (embed_out first, logits last), then stage
}

// The methods own errors are measured with: they give different floors for the same
// backend, so a noise.json says which.
const (
	MethodReplay = "replay" // Own: each layer replayed on the reference's inputs
	MethodPerOp  = "per-op" // PerOp: each operation recomputed from the candidate's inputs
)

// Calibrate returns the floors of the own errors of a clean run (a known-good build) over
// several prompts: per (stage, layer), the worst known own error (rel_l2, with its MAE; NaN
// when any was NaN, which Write refuses). The caller fills in Device, Reference, Model and
// Prompts.
func Calibrate(method string, runs ...[]Record) *Floors {
	type sl struct{ st, layer int }
	worst := map[sl]*Floor{}
	for _, recs := range runs {
		for i := range recs {
			r := &recs[i]
			if !r.Known() {
				continue
			}
			key := sl{int(r.Stage), r.Layer}
			f := worst[key]
			if f == nil {
				f = &Floor{Stage: r.Stage, Layer: r.Layer}
				worst[key] = f
			}
			f.N++
			switch {
			case math.IsNaN(f.RelL2): // NaN stays, and Write refuses it
			case math.IsNaN(r.Own.RelL2) || r.Own.RelL2 > f.RelL2 || (r.Own.RelL2 == f.RelL2 && r.Own.MAE > f.MAE):
				f.RelL2, f.MAE = r.Own.RelL2, r.Own.MAE
			}
		}
	}
	fl := &Floors{Method: method}
	for _, f := range worst {
		fl.Floors = append(fl.Floors, *f)
	}
	fl.sort()
	return fl
}

func (f *Floors) sort() {
	slices.SortFunc(f.Floors, func(a, b Floor) int {
		if c := a.Layer - b.Layer; c != 0 {
			return c
		}
		return int(a.Stage) - int(b.Stage)
	})
}

// Floor returns the noise floor of the row at k (rel_l2): the measured floor of its
// (stage, layer); for a layer without one, the largest measured floor of its stage in other
// layers (the noise of a stage varies little across layers); without any, DefaultFloor. It
// is never below Unit: an operation that is exact in one backend (a copy, an add) may round
// once in another.
func (f *Floors) Floor(c model.Config, k Key) float64 {
	if f != nil {
		same, other := -1.0, -1.0
		for _, fl := range f.Floors {
			if fl.Stage != k.Stage {
				continue
			}
			if fl.Layer == k.Layer {
				same = fl.RelL2
			}
			other = max(other, fl.RelL2)
		}
		switch {
		case same >= 0:
			return max(same, Unit)
		case other >= 0:
			return max(other, Unit)
		}
	}
	return max(DefaultFloor(c, k.Stage, k.Pos), Unit)
}

// Over reports whether r's own error exceeds factor x its floor: the replay policy's test.
// NaN is over; a record whose own error is unknown is never over.
func (f *Floors) Over(c model.Config, r *Record, factor float64) bool {
	return r.Known() && !(r.Own.RelL2 <= factor*f.Floor(c, r.Key))
}

// FirstOver returns the first record of recs (in the order given: causal, as Own, Replay
// and PerOp return them) whose own error is over factor x its floor, or nil.
func (f *Floors) FirstOver(c model.Config, recs []Record, factor float64) *Record {
	for i := range recs {
		if f.Over(c, &recs[i], factor) {
			return &recs[i]
		}
	}
	return nil
}

// Margin is one stage's worst own error against its floor.
type Margin struct {
	Stage golden.Stage
	Worst *Record // the record of the largest ratio; nil when the stage has no known record
	Floor float64 // its floor
	Ratio float64 // its own error / its floor: below 1 is clean, below Factor passes
}

// Margins returns, for each stage with known records in recs, in stage order, the record
// whose own error is the largest multiple of its floor: printed after calibration (against
// the default floors, or a file's) it shows how much room the noise leaves.
func (f *Floors) Margins(c model.Config, recs []Record) []Margin {
	var by [golden.NumStages]*Margin
	for i := range recs {
		r := &recs[i]
		if !r.Known() {
			continue
		}
		fl := f.Floor(c, r.Key)
		ratio := r.Own.RelL2 / fl
		if m := by[r.Stage]; m == nil || ratio > m.Ratio || (math.IsNaN(ratio) && !math.IsNaN(m.Ratio)) {
			by[r.Stage] = &Margin{Stage: r.Stage, Worst: r, Floor: fl, Ratio: ratio}
		}
	}
	var out []Margin
	for _, m := range by {
		if m != nil {
			out = append(out, *m)
		}
	}
	return out
}

// FormatMargins renders margins as a Markdown table: stage, worst own error (rel_l2), where,
// floor, ratio.
func FormatMargins(ms []Margin) string {
	s := "| stage | worst own rel_l2 | at | floor | margin (own / floor) |\n|---|---|---|---|---|\n"
	for _, m := range ms {
		s += fmt.Sprintf("| %s | %.3g | layer %d pos %d | %.3g | %.3g |\n", m.Stage, m.Worst.Own.RelL2, m.Worst.Layer,
			m.Worst.Pos, m.Floor, m.Ratio)
	}
	return s
}
