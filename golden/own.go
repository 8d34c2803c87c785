package golden

import (
	"bytes"
	"fmt"
	"math"
	"slices"
)

// ReasonOwn is the reason of a failure under the replay policy: the record's own error (what
// its layer or operation computed wrong from correct inputs) exceeds Factor x its noise
// floor.
const ReasonOwn = "own"

// OwnError is a record's own error: its row computed by the backend under test from the
// reference's inputs (layer replay) or by the reference from the backend's own inputs (per
// operation), against the other side's row. The end-to-end error of the same record is what
// it inherited from the layers below plus its own.
type OwnError struct {
	RelL2, MAE float64 // the own error
	Floor      float64 // the noise floor (rel_l2) of the record's (stage, layer)
	Factor     float64 // over when RelL2 > Factor x Floor
	Inherited  *Diff   // what came in with the inputs; nil when unknown
	Total      *Diff   // end to end: the backend's row of its own run against the reference's; nil when unknown
}

// Over reports whether the own error exceeds Factor x Floor; NaN is over.
func (o *OwnError) Over() bool { return !(o.RelL2 <= o.Factor*o.Floor) }

// Ratio is the own error in units of the floor.
func (o *OwnError) Ratio() float64 { return o.RelL2 / o.Floor }

// OwnRecord is the own error of one record, or why it is unknown.
type OwnRecord struct {
	Key
	Own     OwnError
	Missing string // the input row whose absence leaves Own unknown; "" when known
}

// OwnResult holds the own errors of one prompt under the replay policy, in causal order.
type OwnResult struct {
	Method  string // "replay" (layers replayed on the reference's inputs) or "per-op"
	Floors  string // where the floors come from: a noise.json, or the default formula
	Records []OwnRecord
}

// SetOwn makes own errors the verdict of pr (the replay policy): its failures become the
// records whose own error is over their floor, FIRST_FAIL the first of them in causal order,
// and the comparison so far (end to end, under a tolerance) stays in the heatmap and in
// FirstTraced as the planned trace's first end-to-end failure. A prompt whose end-to-end
// errors exceed the tolerance while no own error exceeds its floor gets a note: drift
// accumulated from rounding, not a layer that is wrong; SetOwn returns that note.
func (pr *PromptResult) SetOwn(o *OwnResult) (note string) {
	pr.Own = o
	endToEnd := map[Key]Failure{}
	for _, f := range pr.Failures {
		endToEnd[f.Key] = f
	}
	e2e := len(pr.Failures)
	pr.Failures, pr.FirstFail = nil, nil
	pr.ownGrid = map[cellKey]*cell{}
	for i := range o.Records {
		r := &o.Records[i]
		if r.Missing != "" {
			continue
		}
		f := Failure{Key: r.Key, Category: Classify(r.TensorName)}
		if g, ok := endToEnd[r.Key]; ok {
			f.Hash, f.BaselineHash, f.HashMatch, f.TokenID, f.BaselineTokenID = g.Hash, g.BaselineHash, g.HashMatch, g.TokenID, g.BaselineTokenID
		}
		f.Diff = r.Own.Total
		own := r.Own
		f.Own = &own
		if r.Own.Over() {
			f.Reason = ReasonOwn
		}
		pr.ownCellAt(r.Key).add(Failure{Reason: f.Reason, HashMatch: !r.Own.Over(), Diff: &Diff{RelL2: r.Own.RelL2, MAE: r.Own.MAE}, Key: r.Key})
		if f.Reason != "" {
			pr.Failures = append(pr.Failures, f)
		}
	}
	pr.settle(pr.ownGrid)
	switch {
	case pr.Mismatched > 0:
		pr.Status = StatusDiverged
	case pr.Missing() > 0:
		pr.Status = StatusMissing
	case pr.Status != StatusCrash && pr.Status != StatusHang:
		pr.Status = StatusMatch
	}
	if pr.Mismatched == 0 && e2e > 0 {
		return fmt.Sprintf("%s: %s differ end to end beyond the tolerance thresholds while no own error exceeds its floor: drift accumulated from rounding, not a wrong layer",
			pr.PromptID, plural(e2e, "record"))
	}
	return ""
}

// ownCellAt returns the own-error heatmap's cell of key k.
func (pr *PromptResult) ownCellAt(k Key) *cell {
	if _, ok := StageByName(k.TensorName); !ok {
		return &cell{worst: -1}
	}
	return cellIn(pr.ownGrid, pr.cellKeyOf(k))
}

// OwnLayer is one row of the per-layer table: the worst own, inherited and total errors of a
// layer's records (embed_out is layer -1, logits n_layer).
type OwnLayer struct {
	Layer                 int
	Own                   *OwnRecord // the record whose own error is the largest multiple of its floor
	Inherited, Total      float64    // the largest inherited and total rel_l2; -1 when unknown
	Records, Over, Absent int        // records, over the floor x factor, own error unknown
}

// Layers summarises the own errors by layer, in layer order.
func (o *OwnResult) Layers() []OwnLayer {
	by := map[int]*OwnLayer{}
	for i := range o.Records {
		r := &o.Records[i]
		l := by[r.Layer]
		if l == nil {
			l = &OwnLayer{Layer: r.Layer, Inherited: -1, Total: -1}
			by[r.Layer] = l
		}
		l.Records++
		if r.Missing != "" {
			l.Absent++
			continue
		}
		if r.Own.Over() {
			l.Over++
		}
		if l.Own == nil || r.Own.Ratio() > l.Own.Own.Ratio() || math.IsNaN(r.Own.Ratio()) && !math.IsNaN(l.Own.Own.Ratio()) {
			l.Own = r
		}
		if d := r.Own.Inherited; d != nil {
			l.Inherited = max(l.Inherited, d.RelL2)
		}
		if d := r.Own.Total; d != nil {
			l.Total = max(l.Total, d.RelL2)
		}
	}
	out := make([]OwnLayer, 0, len(by))
	for _, l := range by {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b OwnLayer) int { return a.Layer - b.Layer })
	return out
}

func sizeOrNA(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return formatNum(v)
}

// writeOwn writes the Markdown section of a prompt's own errors: the method and floors, and
// the per-layer table of own vs inherited error.
func writeOwn(b *bytes.Buffer, p *PromptResult) {
	o := p.Own
	if o == nil {
		return
	}
	fmt.Fprintf(b, "\n## Own vs inherited error of %s\n\nOwn error by %s, floors from %s; a record fails when its own rel_l2 exceeds %s x its floor.\n\n",
		p.PromptID, o.methodText(), o.Floors, formatNum(o.factor()))
	b.WriteString("| Layer | Worst own rel_l2 | At | Floor | Own / floor | Worst inherited rel_l2 | Worst total rel_l2 | Over | Unknown |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, l := range o.Layers() {
		own, at, floor, ratio := "n/a", "-", "n/a", "n/a"
		if r := l.Own; r != nil {
			own, at, floor, ratio = formatNum(r.Own.RelL2), fmt.Sprintf("%s pos %d", r.TensorName, r.PosID), formatNum(r.Own.Floor), formatNum(r.Own.Ratio())
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %d | %d |\n", layerName(l.Layer, p.nLayer), own, at, floor, ratio,
			sizeOrNA(l.Inherited), sizeOrNA(l.Total), l.Over, l.Absent)
	}
}

func (o *OwnResult) methodText() string {
	if o.Method == "per-op" {
		return "operation (each stage recomputed by the reference from the backend's own input rows)"
	}
	return "layer replay (each layer run by the backend under test from the reference's input rows)"
}

// factor is the policy's factor, from the first known record.
func (o *OwnResult) factor() float64 {
	for _, r := range o.Records {
		if r.Missing == "" {
			return r.Own.Factor
		}
	}
	return math.NaN()
}

// layerName words a layer for the tables: embed for -1, logits for n_layer.
func layerName(l, nLayer int) string {
	switch {
	case l < 0:
		return "embed"
	case nLayer > 0 && l == nLayer:
		return "logits"
	}
	return fmt.Sprint(l)
}

// ownLine is what the FIRST_FAIL line adds for a failure under the replay policy.
func (f *Failure) ownLine() string {
	if f.Own == nil {
		return ""
	}
	return fmt.Sprintf(", own rel_l2 %s (floor %s)", formatNum(f.Own.RelL2), formatNum(f.Own.Floor))
}

// ownHTML is the own-error section of a prompt's HTML report.
type ownHTML struct {
	Heading string
	Heatmap heatmap
	Rows    []ownHTMLRow
}

type ownHTMLRow struct {
	Layer, Own, At, Floor, Ratio, Inherited, Total string
	Over, Unknown                                  int
}

func ownView(p *PromptResult) *ownHTML {
	o := p.Own
	if o == nil {
		return nil
	}
	v := &ownHTML{
		Heading: fmt.Sprintf("Own error by %s; floors from %s; failing above %s x the floor.", o.methodText(), o.Floors, formatNum(o.factor())),
		Heatmap: p.heatmapOf(p.ownGrid, nil, "own error"),
	}
	for _, l := range o.Layers() {
		row := ownHTMLRow{Layer: layerName(l.Layer, p.nLayer), Own: "n/a", At: "-", Floor: "n/a", Ratio: "n/a",
			Inherited: sizeOrNA(l.Inherited), Total: sizeOrNA(l.Total), Over: l.Over, Unknown: l.Absent}
		if r := l.Own; r != nil {
			row.Own, row.At, row.Floor, row.Ratio = formatNum(r.Own.RelL2), fmt.Sprintf("%s pos %d", r.TensorName, r.PosID), formatNum(r.Own.Floor), formatNum(r.Own.Ratio())
		}
		v.Rows = append(v.Rows, row)
	}
	return v
}

// jsonOwn is a prompt's own errors in the JSON report.
type jsonOwn struct {
	Method string          `json:"method"`
	Floors string          `json:"floors"`
	Factor jsonFloat       `json:"factor"`
	Layers []jsonOwnLayer  `json:"layers"`
	Over   []jsonOwnRecord `json:"over"` // the records over their floor, causal order
}

type jsonOwnLayer struct {
	Layer     int            `json:"layer"`
	Worst     *jsonOwnRecord `json:"worst"` // the largest multiple of its floor
	Inherited jsonFloat      `json:"inherited_rel_l2"`
	Total     jsonFloat      `json:"total_rel_l2"`
	Records   int            `json:"records"`
	Over      int            `json:"over"`
	Unknown   int            `json:"unknown"`
}

type jsonOwnRecord struct {
	PosID      int       `json:"pos_id"`
	Layer      int       `json:"layer"`
	TensorName string    `json:"tensor_name"`
	OwnRelL2   jsonFloat `json:"own_rel_l2"`
	OwnMAE     jsonFloat `json:"own_mae"`
	Floor      jsonFloat `json:"floor"`
	Ratio      jsonFloat `json:"ratio"`
	Inherited  jsonFloat `json:"inherited_rel_l2"`
	Total      jsonFloat `json:"total_rel_l2"`
}

func float(v float64) jsonFloat { return jsonFloat{&v} }

func diffRel(d *Diff) jsonFloat {
	if d == nil {
		return jsonFloat{}
	}
	return float(d.RelL2)
}

func toJSONOwnRecord(r *OwnRecord) *jsonOwnRecord {
	return &jsonOwnRecord{PosID: r.PosID, Layer: r.Layer, TensorName: r.TensorName, OwnRelL2: float(r.Own.RelL2),
		OwnMAE: float(r.Own.MAE), Floor: float(r.Own.Floor), Ratio: float(r.Own.Ratio()),
		Inherited: diffRel(r.Own.Inherited), Total: diffRel(r.Own.Total)}
}

func toJSONOwn(o *OwnResult) *jsonOwn {
	if o == nil {
		return nil
	}
	j := &jsonOwn{Method: o.Method, Floors: o.Floors, Factor: float(o.factor()), Layers: []jsonOwnLayer{}, Over: []jsonOwnRecord{}}
	for _, l := range o.Layers() {
		jl := jsonOwnLayer{Layer: l.Layer, Records: l.Records, Over: l.Over, Unknown: l.Absent}
		if l.Own != nil {
			jl.Worst = toJSONOwnRecord(l.Own)
		}
		if l.Inherited >= 0 {
			jl.Inherited = float(l.Inherited)
		}
		if l.Total >= 0 {
			jl.Total = float(l.Total)
		}
		j.Layers = append(j.Layers, jl)
	}
	for i := range o.Records {
		if r := &o.Records[i]; r.Missing == "" && r.Own.Over() {
			j.Over = append(j.Over, *toJSONOwnRecord(r))
		}
	}
	return j
}
