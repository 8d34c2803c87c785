package golden

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// A heatmap cell gathers the records of one (layer, stage) of a prompt: embed_out and logits
// have a row of their own.
type cellKey struct {
	row   int // layer; embedRow and logitsRow for the two rows outside the layers
	stage Stage
}

const (
	embedRow  = math.MinInt
	logitsRow = math.MaxInt
)

type cell struct {
	records int     // compared records
	failed  int     // failing records
	missing int     // records on one side only
	unsized int     // differing records without a size
	worst   float64 // largest rel_l2 among sized records; -1 when none
	worstAt int     // its position
	first   bool    // holds the FIRST_FAIL
}

// cellAt returns the cell of key k, creating it; stage names outside the table get a cell
// that is not drawn.
func (p *PromptResult) cellAt(k Key) *cell {
	if _, ok := StageByName(k.TensorName); !ok {
		return &cell{worst: -1}
	}
	if k.TensorName == Logits.String() {
		p.nLayer = max(p.nLayer, k.Layer) // logits carry layer n_layer
	}
	return cellIn(p.grid, p.cellKeyOf(k))
}

// cellIn returns grid's cell ck, creating it.
func cellIn(grid map[cellKey]*cell, ck cellKey) *cell {
	c := grid[ck]
	if c == nil {
		c = &cell{worst: -1}
		grid[ck] = c
	}
	return c
}

// cellKeyOf returns the heatmap cell of a key of a stage in the table.
func (p *PromptResult) cellKeyOf(k Key) cellKey {
	st, _ := StageByName(k.TensorName)
	ck := cellKey{k.Layer, st}
	switch st {
	case EmbedOut:
		ck.row = embedRow
	case Logits:
		ck.row = logitsRow
	}
	return ck
}

// rowNotes says, for each heatmap row (layer) an extra run traced, which runs and where:
// "run 2: positions 0..1000".
func (p *PromptResult) rowNotes() map[int]string {
	notes := map[int]string{}
	for i, r := range p.Extra {
		for _, l := range r.Layers {
			note := fmt.Sprintf("run %d: %s", i+1, positionsText(r.Positions))
			if prev := notes[l]; prev != "" {
				note = prev + "; " + note
			}
			notes[l] = note
		}
	}
	return notes
}

// positionsText words an extra run's positions for a reader.
func positionsText(pos string) string {
	switch {
	case pos == "planned":
		return "planned positions"
	case strings.Contains(pos, ".."):
		return "positions " + pos
	}
	return "position " + pos
}

func (c *cell) add(f Failure) {
	c.records++
	if f.Reason != "" {
		c.failed++
	}
	if f.Diff == nil {
		if !f.HashMatch || f.Reason != "" {
			c.unsized++
		}
		return
	}
	rel := f.Diff.RelL2
	if rel != rel {
		rel = math.Inf(1)
	}
	if rel > c.worst {
		c.worst, c.worstAt = rel, f.PosID
	}
}

// Colour bins: log10 of the worst relative error, by decade. Decades are found by
// comparison, not by a logarithm, so the page is the same on every machine.
var (
	decadeBounds  = []float64{1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1}
	decadeColours = []string{"#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#bd0026", "#67001f"}
	decadeTicks   = []string{"1e-7", "1e-6", "1e-5", "1e-4", "1e-3", "0.01", "0.1", "1"}
)

const (
	colourIdentical = "#cfe8d0"
	colourUnsized   = "#6a51a3"
	colourMissing   = "#9e9e9e"
	colourFirstFail = "#0a58ca" // the outline: blue stands apart from the red ramp
)

// style returns a cell's fill colour and a words-only description of its state.
func (c *cell) style() (fill, state string) {
	switch {
	case c.unsized > 0 || (c.failed > 0 && c.worst < 0):
		return colourUnsized, "mismatch, size unknown"
	case c.worst > 0:
		i := 0
		for i < len(decadeBounds) && c.worst >= decadeBounds[i] {
			i++
		}
		return decadeColours[i], "worst rel_l2 " + formatNum(c.worst) + fmt.Sprintf(" at pos %d", c.worstAt)
	case c.worst == 0:
		return colourIdentical, "identical"
	}
	return colourMissing, "missing"
}

// heatRow is one row of a prompt's heatmap, ready for the template.
type heatRow struct {
	Label string
	Y     int
	Cells []heatCell
	Slots []heatCell // stages of this row that were not traced
	Note  string     // which extra runs traced this row, and where
	NoteX int
}

type heatCell struct {
	X, Y        int
	Fill        string
	Title       string
	Failed      bool
	First       bool
	FirstTraced bool // the planned trace's first failure, when an extra run found an earlier origin
	Missing     bool
	FailMarkXY  string // points of the corner mark of a failing cell
}

// Heatmap geometry, in SVG pixels.
const (
	hmLabelW = 96
	hmHeadH  = 118
	hmCellW  = 40
	hmCellH  = 20
	hmGap    = 2
	hmGapH   = 14  // height of the mark for untraced layers
	hmNoteW  = 330 // room right of the cells for the notes of rows that extra runs traced
)

type heatmap struct {
	Width, Height int
	Columns       []heatColumn
	Rows          []heatRow
	Gaps          []heatGap
}

// heatGap marks layers that were not traced between two rows.
type heatGap struct {
	Y     int
	Label string
}

type heatColumn struct {
	Name string
	X, Y int // anchor of the rotated label
}

// heatmap lays the prompt's cells out: rows embed_out, the traced layers ascending, logits;
// columns the stage table.
func (p *PromptResult) heatmap() heatmap {
	var tracedFirst *cell
	if p.FirstTraced != nil && !p.FirstTraced.FirstFail {
		tracedFirst = p.grid[p.cellKeyOf(p.FirstTraced.Key)]
	}
	return p.heatmapOf(p.grid, tracedFirst, "compared")
}

// heatmapOf lays out grid's cells (the comparison's, or the own errors'), tracedFirst dashed;
// what says what a cell's records are in its title.
func (p *PromptResult) heatmapOf(grid map[cellKey]*cell, tracedFirst *cell, what string) heatmap {
	var rows []int
	for k := range grid {
		if !slices.Contains(rows, k.row) {
			rows = append(rows, k.row)
		}
	}
	slices.Sort(rows)
	hm := heatmap{Width: hmLabelW + NumStages*(hmCellW+hmGap) + 8}
	notes := p.rowNotes()
	if len(notes) > 0 {
		hm.Width += hmNoteW
	}
	for _, s := range Stages() {
		x := hmLabelW + int(s.Stage)*(hmCellW+hmGap) + hmCellW/2 + 4
		hm.Columns = append(hm.Columns, heatColumn{s.Name, x, hmHeadH - 6})
	}
	y := hmHeadH
	for i, r := range rows {
		// Untraced layers between two traced ones open a gap with a mark: the first
		// failing layer may have an untraced predecessor.
		next := r
		if r == logitsRow {
			next = p.nLayer
		}
		if i > 0 && rows[i-1] != embedRow && next > rows[i-1]+1 {
			hm.Gaps = append(hm.Gaps, heatGap{Y: y + hmGapH/2 + 3, Label: untracedLabel(rows[i-1]+1, next-1)})
			y += hmGapH
		}
		hr := heatRow{Y: y + hmCellH/2 + 4, Note: notes[r], NoteX: hmLabelW + NumStages*(hmCellW+hmGap) + 10}
		switch r {
		case embedRow:
			hr.Label = "embed"
		case logitsRow:
			hr.Label = "logits"
		default:
			hr.Label = fmt.Sprintf("layer %d", r)
		}
		for _, s := range Stages() {
			x := hmLabelW + int(s.Stage)*(hmCellW+hmGap)
			c := grid[cellKey{r, s.Stage}]
			if c == nil {
				if rowHas(r, s) {
					hr.Slots = append(hr.Slots, heatCell{X: x, Y: y, Title: fmt.Sprintf("%s %s: not traced", hr.Label, s.Name)})
				}
				continue
			}
			fill, state := c.style()
			title := fmt.Sprintf("%s %s: %d %s, %d failing, %d missing; %s", hr.Label, s.Name, c.records, what, c.failed, c.missing, state)
			switch {
			case c.first && len(p.Extra) > 0:
				title = "FIRST_FAIL (isolated origin). " + title
			case c.first:
				title = "FIRST_FAIL. " + title
			case c == tracedFirst:
				title = "first failure of the planned trace. " + title
			}
			hr.Cells = append(hr.Cells, heatCell{
				X: x, Y: y, Fill: fill, Title: title,
				Failed: c.failed > 0, First: c.first, FirstTraced: c == tracedFirst, Missing: c.records == 0 && c.failed == 0,
				FailMarkXY: fmt.Sprintf("%d,%d %d,%d %d,%d", x+hmCellW-9, y, x+hmCellW, y, x+hmCellW, y+9),
			})
		}
		hm.Rows = append(hm.Rows, hr)
		y += hmCellH + hmGap
	}
	hm.Height = y + 4
	return hm
}

func untracedLabel(from, to int) string {
	if from == to {
		return fmt.Sprintf("layer %d not traced", from)
	}
	return fmt.Sprintf("layers %d-%d not traced", from, to)
}

// rowHas reports whether a heatmap row has a slot for stage s.
func rowHas(row int, s StageInfo) bool {
	switch row {
	case embedRow:
		return s.Stage == EmbedOut
	case logitsRow:
		return s.Stage == Logits
	}
	return s.PerLayer
}

// legendBar is the colour bar of the decades with its tick labels, and the swatches of the
// special states, laid out for an SVG.
type legendBar struct {
	Steps     []legendStep
	Ticks     []legendStep
	Swatches  []legendStep
	Width     int
	BarEnd    int
	FirstX    int
	TracedX   int // the dashed outline of the planned trace's first failure
	FailMarkX int
	FailMark  string // points of the failing mark's triangle
}

type legendStep struct {
	X     int
	Fill  string
	Label string
}

func legend() legendBar {
	const step, x0 = 44, 0
	var l legendBar
	for i, c := range decadeColours {
		l.Steps = append(l.Steps, legendStep{X: x0 + i*step, Fill: c})
	}
	for i, label := range decadeTicks {
		l.Ticks = append(l.Ticks, legendStep{X: x0 + (i+1)*step, Label: label})
	}
	l.BarEnd = x0 + len(decadeColours)*step
	x := l.BarEnd + 28
	for _, s := range []legendStep{{Fill: colourIdentical, Label: "identical"}, {Fill: colourUnsized, Label: "differs, size unknown"}, {Fill: colourMissing, Label: "missing on one side"}} {
		s.X = x
		l.Swatches = append(l.Swatches, s)
		x += 24 + 7*len(s.Label)
	}
	l.FirstX = x
	l.TracedX = x + 96
	l.FailMarkX = l.TracedX + 120
	l.FailMark = fmt.Sprintf("%d,2 %d,2 %d,11", l.FailMarkX+21, l.FailMarkX+30, l.FailMarkX+30)
	l.Width = l.FailMarkX + 70
	return l
}
