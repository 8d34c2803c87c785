package golden

import (
	_ "embed"
	"fmt"
	"html/template"
	"slices"
	"strings"
)

// The shape in the reports: a Markdown section, a JSON object and an HTML section per prompt.

// shapeMarkdown is the Markdown section on the shapes of the prompts that have one.
func shapeMarkdown(prompts []*PromptResult) string {
	var b strings.Builder
	for _, p := range prompts {
		sh := p.Shape
		if sh == nil {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\n## Shape of the divergence at its origin\n")
		}
		fmt.Fprintf(&b, "\n### %s: %s\n\n| | |\n|---|---|\n", p.PromptID, sh.where())
		for _, row := range sh.rows() {
			fmt.Fprintf(&b, "| %s | %s |\n", row[0], strings.ReplaceAll(row[1], "|", `\|`))
		}
	}
	return b.String()
}

// where names the origin: "k_post_rope, layer 3, first divergent position 826".
func (sh *Shape) where() string {
	return fmt.Sprintf("%s, layer %d, origin at position %d", sh.Stage, sh.Layer, sh.Origin)
}

// rows are the section's table: what, and what was found.
func (sh *Shape) rows() [][2]string {
	rows := [][2]string{
		{"Positions", sh.Positions.text(sh.Compared) + fmt.Sprintf(" (compared: %d..%d)", sh.Compared[0], sh.Compared[1])},
		{"Channels", sh.Channels.text() + fmt.Sprintf(" (row width %d, head_dim %d)", sh.Width, sh.HeadDim)},
		{"Kind", sh.Kind.text()},
		{"Hypothesis", string(sh.Hypothesis)},
		{"Evidence", sh.Evidence},
		{"Noise floor", fmt.Sprintf("differences below %s of |baseline| + 0.1 rms(row) are background", formatNum(sh.Noise))},
	}
	if sh.Note != "" {
		rows = append(rows, [2]string{"Note", sh.Note})
	}
	return rows
}

// The JSON report's shape object; field order is the schema's.
type (
	jsonShape struct {
		Stage      string             `json:"stage"`
		Layer      int                `json:"layer"`
		OriginPos  int                `json:"origin_pos"`
		Width      int                `json:"width"`
		HeadDim    int                `json:"head_dim"`
		Compared   []int              `json:"compared"`
		Positions  jsonShapePositions `json:"positions"`
		Channels   jsonShapeChannels  `json:"channels"`
		Kind       jsonShapeKind      `json:"kind"`
		Hypothesis Hypothesis         `json:"hypothesis"`
		Evidence   string             `json:"evidence"`
		Noise      float64            `json:"noise"`
		Note       string             `json:"note"`
		Line       string             `json:"line"`
	}
	jsonShapePositions struct {
		Pattern PositionPattern `json:"pattern"`
		First   int             `json:"first"`
		Last    int             `json:"last"`
		Count   int             `json:"count"`
		Period  int             `json:"period"`
		Phase   int             `json:"phase"`
		Ends    bool            `json:"ends"`
		Decode  bool            `json:"decode"`
		List    []int           `json:"list"`
	}
	jsonShapeChannels struct {
		Pattern ChannelPattern `json:"pattern"`
		Lo      int            `json:"lo"`
		Hi      int            `json:"hi"`
		Count   int            `json:"count"`
		Heads   []int          `json:"heads"`
		NHeads  int            `json:"n_heads"`
	}
	jsonShapeKind struct {
		Name      KindName `json:"name"`
		Factor    float64  `json:"factor"`
		Offset    float64  `json:"offset"`
		Shift     int      `json:"shift"`
		Pairs     [][2]int `json:"pairs"`
		ULPMedian float64  `json:"ulp_median"`
		ULPMax    float64  `json:"ulp_max"`
		RelMedian float64  `json:"rel_median"`
		Detail    string   `json:"detail"`
	}
)

// shapeJSON is the prompt's "shape" object, nil (null) without a shape.
func shapeJSON(sh *Shape) *jsonShape {
	if sh == nil {
		return nil
	}
	p, c, k := sh.Positions, sh.Channels, sh.Kind
	orEmpty := func(v []int) []int { return append([]int{}, v...) }
	return &jsonShape{
		Stage: sh.Stage.String(), Layer: sh.Layer, OriginPos: sh.Origin, Width: sh.Width, HeadDim: sh.HeadDim,
		Compared: orEmpty(sh.Compared),
		Positions: jsonShapePositions{p.Pattern, p.First, p.Last, p.Count, p.Period, p.Phase, p.Ends, p.Decode,
			orEmpty(p.List)},
		Channels: jsonShapeChannels{c.Pattern, c.Lo, c.Hi, c.Count, orEmpty(c.Heads), c.NHeads},
		Kind: jsonShapeKind{k.Name, k.Factor, k.Offset, k.Shift, append([][2]int{}, k.Pairs...), k.ULPMedian, k.ULPMax,
			k.RelMedian, k.Detail},
		Hypothesis: sh.Hypothesis, Evidence: sh.Evidence, Noise: sh.Noise, Note: sh.Note, Line: sh.Line(),
	}
}

//go:embed shape.html.tmpl
var shapeHTML string

// The section joins the report's template, which shows it with {{template "shape" .ShapeView}}.
var _ = template.Must(reportTemplate.New("shape").Parse(shapeHTML))

// Colours of the strips: divergent stands apart from the heatmap's ramp and outline.
const (
	colourDivergent = "#c2255c"
	colourClean     = "#e9ecef"
)

// Geometry of the strips.
const (
	stripWidth  = 720
	stripHeight = 14
	stripBins   = 360 // at most: several positions or channels share a bin beyond
)

type htmlShape struct {
	Where     string
	Line      string
	Rows      [][2]string
	Strips    []htmlStrip
	Divergent string
	Clean     string
}

// htmlStrip draws positions or channels as a bar of bins, divergent ones coloured, with tick
// marks (head boundaries for channels).
type htmlStrip struct {
	Title, Left, Right string
	Width, Height      int
	Bins               []htmlBin
	Ticks              []int
}

type htmlBin struct {
	X, W  int
	Fill  string
	Title string
}

// shapeView is what the HTML section shows of sh; nil without a shape.
func shapeView(sh *Shape) *htmlShape {
	if sh == nil {
		return nil
	}
	v := &htmlShape{Where: sh.where(), Line: sh.Line(), Rows: sh.rows(), Divergent: colourDivergent, Clean: colourClean}
	lo, hi := sh.Compared[0], sh.Compared[1]
	v.Strips = append(v.Strips, strip("positions", lo, hi, func(p int) bool { return sh.hasPos(p) }, nil))
	var ticks []int
	if sh.Channels.NHeads > 1 {
		for h := 1; h < sh.Channels.NHeads; h++ {
			ticks = append(ticks, h*sh.HeadDim)
		}
	}
	v.Strips = append(v.Strips, strip("channels", 0, sh.Width-1, func(c int) bool { return sh.hasChannel(c) }, ticks))
	return v
}

// hasPos reports whether position p diverges.
func (sh *Shape) hasPos(p int) bool {
	_, ok := slices.BinarySearch(sh.divPos, p)
	return ok
}

// hasChannel reports whether channel c diverges, by the pattern found.
func (sh *Shape) hasChannel(c int) bool {
	ch := sh.Channels
	switch ch.Pattern {
	case ChannelsScattered:
		return c < len(sh.divCh) && sh.divCh[c]
	case ChannelsHeads:
		return sh.HeadDim > 0 && slices.Contains(ch.Heads, c/sh.HeadDim)
	}
	return c >= ch.Lo && c <= ch.Hi
}

// strip bins lo..hi into at most stripBins bins; a bin is divergent when any of its members is.
func strip(title string, lo, hi int, divergent func(int) bool, ticks []int) htmlStrip {
	n := hi - lo + 1
	bins := min(n, stripBins)
	s := htmlStrip{Title: title, Left: fmt.Sprint(lo), Right: fmt.Sprint(hi), Width: stripWidth, Height: stripHeight}
	for b := 0; b < bins; b++ {
		first, last := lo+b*n/bins, lo+(b+1)*n/bins-1
		div := false
		for x := first; x <= last && !div; x++ {
			div = divergent(x)
		}
		bin := htmlBin{X: b * stripWidth / bins, W: (b+1)*stripWidth/bins - b*stripWidth/bins, Fill: colourClean}
		if div {
			bin.Fill = colourDivergent
		}
		bin.Title = fmt.Sprintf("%s %d..%d: %s", title, first, last, map[bool]string{true: "divergent", false: "clean"}[div])
		if first == last {
			bin.Title = fmt.Sprintf("%s %d: %s", strings.TrimSuffix(title, "s"), first, map[bool]string{true: "divergent", false: "clean"}[div])
		}
		s.Bins = append(s.Bins, bin)
	}
	for _, t := range ticks {
		s.Ticks = append(s.Ticks, (t-lo)*stripWidth/n)
	}
	return s
}
