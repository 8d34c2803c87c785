package golden

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// ShapeInput is what DiagnoseShape reads: the rows of the origin's stage at every position
// compared, on both sides. At the origin every earlier stage and every lower layer is clean,
// so these rows show the stage's own error and nothing inherited.
type ShapeInput struct {
	Stage   Stage
	Layer   int
	Origin  int // the origin's position
	HeadDim int // the model's head_dim; 0 when the model has no heads to speak of
	NPrompt int // the prompt's length: positions from NPrompt on are decode positions
	// Pos lists the positions of the rows, ascending; Cand and Base are the candidate's and
	// the baseline's rows there, all of one width.
	Pos        []int
	Cand, Base [][]float32
	// QuietCand and QuietBase are row pairs known to differ by the comparison's background
	// noise only (the stage before Stage, up to Origin). With the rows of Stage before
	// Origin they set the noise floor; with neither, a difference of about 2^-18 relative
	// counts.
	QuietCand, QuietBase [][]float32
}

// Shape says what a divergence looks like at its origin: where in the positions and in the
// row it is, what kind of error, and which of the seed's four hypotheses (position encoding,
// KV cache, numerical precision, memory layout) it points to. DiagnoseShape makes it.
type Shape struct {
	Stage     Stage
	Layer     int
	Origin    int
	Width     int
	HeadDim   int
	Compared  []int // the positions compared, first and last
	Positions PositionShape
	Channels  ChannelShape
	Kind      ErrorKind
	// Hypothesis is one of the seed's four, or HypothesisNone; Evidence says why in words.
	Hypothesis Hypothesis
	Evidence   string
	// Noise is the relative size, |cand-base| / (|base| + 0.1*rms(base row)), below which a
	// difference counted as the comparison's background noise.
	Noise float64
	// Note says what the rows left out, when anything was (set by the caller).
	Note string

	divPos []int  // every divergent position (the reports draw them)
	divCh  []bool // divergent channels
}

// PositionPattern is how the divergent positions lie.
type PositionPattern string

// Position patterns.
const (
	PositionsAll       PositionPattern = "all"       // every position compared
	PositionsFrom      PositionPattern = "from"      // every position from First on
	PositionsOnly      PositionPattern = "only"      // First alone
	PositionsRange     PositionPattern = "range"     // First..Last, none after
	PositionsPeriodic  PositionPattern = "periodic"  // p % Period == Phase, from First (to Last)
	PositionsScattered PositionPattern = "scattered" // none of these: List
)

// PositionShape is where along the sequence the rows diverge.
type PositionShape struct {
	Pattern     PositionPattern
	First, Last int // first and last divergent position
	Count       int // divergent positions
	Period      int // periodic only
	Phase       int
	// Ends reports, for a periodic pattern, that positions in the phase after Last are clean.
	Ends bool
	// Decode reports that only decode positions diverge: the prompt's are clean.
	Decode bool
	List   []int // scattered: the first few positions
}

// ChannelPattern is how the divergent elements lie within a row.
type ChannelPattern string

// Channel patterns.
const (
	ChannelsAll       ChannelPattern = "all"       // every element of the row
	ChannelsHeads     ChannelPattern = "heads"     // whole heads (Heads), of stages made of heads
	ChannelsRange     ChannelPattern = "range"     // Lo..Hi
	ChannelsOne       ChannelPattern = "one"       // the element Lo
	ChannelsScattered ChannelPattern = "scattered" // none of these
)

// ChannelShape is where within a row the elements diverge.
type ChannelShape struct {
	Pattern ChannelPattern
	Lo, Hi  int   // the divergent channels' span
	Count   int   // divergent channels
	Heads   []int // heads: their indices
	NHeads  int   // heads in the row (0 for rows not made of heads)
}

// KindName names an error kind.
type KindName string

// Error kinds.
const (
	KindScale        KindName = "scale"        // c = b*Factor
	KindOffset       KindName = "offset"       // c = b + Offset
	KindAffine       KindName = "affine"       // c = b*Factor + Offset
	KindNoise        KindName = "noise"        // ulp-level differences of both signs
	KindRoundF16     KindName = "round-f16"    // c = b rounded to half precision
	KindRoundBF16    KindName = "round-bf16"   // c = b rounded to bfloat16
	KindSign         KindName = "sign"         // c = -b
	KindZero         KindName = "zero"         // c = 0
	KindNaN          KindName = "nan"          // c is NaN
	KindInf          KindName = "inf"          // c is infinite
	KindShift        KindName = "shift"        // row p holds the baseline's row p-Shift
	KindSwap         KindName = "swap"         // rows exchanged in pairs (Pairs)
	KindMoved        KindName = "moved"        // rows hold other positions' rows (Pairs: to, from)
	KindMixed        KindName = "mixed"        // different kinds at different positions (Detail)
	KindUnrecognised KindName = "unrecognised" // none of these (Detail)
)

// ErrorKind is what the error does to each divergent element.
type ErrorKind struct {
	Name   KindName
	Factor float64 // scale, affine
	Offset float64 // offset, affine
	Shift  int     // shift
	Pairs  [][2]int
	// ULPMedian and ULPMax are the distances in float32 ulps over the divergent elements.
	ULPMedian, ULPMax float64
	// RelMedian is the median of |c-b|/|b| over the divergent elements.
	RelMedian float64
	Detail    string
}

// Hypothesis is one of the seed's four hypotheses, or none.
type Hypothesis string

// The seed's hypotheses.
const (
	HypothesisPositionEncoding Hypothesis = "position encoding"
	HypothesisKVCache          Hypothesis = "KV cache"
	HypothesisPrecision        Hypothesis = "numerical precision"
	HypothesisMemoryLayout     Hypothesis = "memory layout"
	HypothesisNone             Hypothesis = "none fits"
)

// Thresholds of the diagnosis.
const (
	// shapeNoiseFloor is the smallest relative difference that counts when the quiet rows
	// are identical or absent: about 32 float32 ulps of an element near the row's RMS.
	shapeNoiseFloor = 0x1p-18
	// shapeNoiseMargin: a difference counts when it is this many times the largest one of
	// the quiet rows.
	shapeNoiseMargin = 8
	// shapeRowShare is the share of the row's RMS in an element's yardstick, so elements
	// near zero do not turn rounding noise into large relative errors.
	shapeRowShare = 0.1
	// shapeFitSlack is how far from a fitted scale or offset an element may lie, as a share
	// of the fitted change.
	shapeFitSlack = 0.01
	// shapeAgree is the share of divergent elements a kind must explain.
	shapeAgree = 0.995
	// shapeListMax caps the positions, pairs and heads listed.
	shapeListMax = 8
	// shapeMoveRows caps the rows searched one by one for a source row.
	shapeMoveRows = 64
)

// DiagnoseShape describes the divergence in the rows of in: its positions, its channels, its
// kind (with its numbers) and the hypothesis it points to. It is pure and deterministic.
//
// An element diverges when |cand-base| exceeds Noise times |base| + 0.1*rms(base row); Noise
// is 8 times the largest such ratio in the quiet rows (the stage's rows before the origin,
// QuietCand/QuietBase), at least 2^-18. So background noise of a cross-device comparison is
// left out and the divergent part described. When nothing exceeds it, the kind is ulp-level
// noise, described over every element whose bits differ. A kind is given only when it
// explains 99.5% of the divergent elements; otherwise the kind is mixed (a different kind at
// each position) or unrecognised, with what was seen.
func DiagnoseShape(in ShapeInput) (*Shape, error) {
	d, err := newShapeData(in)
	if err != nil {
		return nil, err
	}
	sh := &Shape{Stage: in.Stage, Layer: in.Layer, Origin: in.Origin, Width: d.w, HeadDim: in.HeadDim,
		Compared: []int{in.Pos[0], in.Pos[len(in.Pos)-1]}, Noise: d.theta}
	if d.perHead() {
		sh.Channels.NHeads = d.w / in.HeadDim
	}
	if d.nAff == 0 {
		// Nothing above the noise: describe every differing bit as noise.
		for i := range d.aff {
			d.aff[i] = d.differs(i/d.w, i%d.w)
		}
		if !slices.Contains(d.aff, true) {
			return nil, fmt.Errorf("shape: the candidate's rows of %s equal the baseline's bit for bit", in.Stage)
		}
		d.model, d.sparse = allVisible, true
		sh.Kind = d.ulps(ErrorKind{Name: KindNoise}, nil)
	} else {
		sh.Kind = d.fitKind()
	}
	rows, chans := d.classify()
	for r, k := range rows {
		if k == clsIn {
			sh.divPos = append(sh.divPos, in.Pos[r])
		}
	}
	for _, k := range chans {
		sh.divCh = append(sh.divCh, k == clsIn)
	}
	sh.Positions = d.positionShape(rows)
	sh.Channels = d.channelShape(chans, sh.Channels.NHeads)
	sh.Hypothesis, sh.Evidence = hypothesis(sh, in.NPrompt, d.growth(chans))
	return sh, nil
}

// shapeData is the diagnosis's working state.
type shapeData struct {
	in    ShapeInput
	n, w  int
	rms   []float64 // of each baseline row
	theta float64
	aff   []bool // n*w: the element diverges beyond the noise
	nAff  int
	// model predicts the candidate's element under the fitted kind (known false when it
	// cannot say): an element whose predicted change is below the noise is invisible, and
	// says nothing about where the error lies.
	model func(r, c int) (float32, bool)
	// sparse: the kind touches a part of the elements at random (noise), so one divergent
	// element makes its row and channel divergent, and an element that agrees says nothing.
	sparse bool
}

func allVisible(int, int) (float32, bool) { return 0, false }

func newShapeData(in ShapeInput) (*shapeData, error) {
	n := len(in.Pos)
	switch {
	case n == 0:
		return nil, fmt.Errorf("shape: no rows")
	case len(in.Cand) != n || len(in.Base) != n:
		return nil, fmt.Errorf("shape: %d positions but %d candidate and %d baseline rows", n, len(in.Cand), len(in.Base))
	case in.HeadDim < 0:
		return nil, fmt.Errorf("shape: head_dim %d", in.HeadDim)
	case len(in.QuietCand) != len(in.QuietBase):
		return nil, fmt.Errorf("shape: %d quiet candidate rows but %d baseline rows", len(in.QuietCand), len(in.QuietBase))
	}
	w := len(in.Base[0])
	if w == 0 {
		return nil, fmt.Errorf("shape: empty rows")
	}
	for i := range in.Pos {
		if len(in.Cand[i]) != w || len(in.Base[i]) != w {
			return nil, fmt.Errorf("shape: position %d: rows of %d and %d elements, want %d", in.Pos[i], len(in.Cand[i]), len(in.Base[i]), w)
		}
		if i > 0 && in.Pos[i] <= in.Pos[i-1] {
			return nil, fmt.Errorf("shape: positions not ascending at %d", in.Pos[i])
		}
	}
	d := &shapeData{in: in, n: n, w: w, rms: make([]float64, n), aff: make([]bool, n*w), model: allVisible}
	for i, row := range in.Base {
		d.rms[i] = rowRMS(row, in.Cand[i])
	}
	quiet := 0.0
	for i, p := range in.Pos {
		if p < in.Origin {
			quiet = max(quiet, maxRel(in.Cand[i], in.Base[i], d.rms[i]))
		}
	}
	for i := range in.QuietBase {
		if len(in.QuietCand[i]) != len(in.QuietBase[i]) {
			return nil, fmt.Errorf("shape: quiet row %d: %d and %d elements", i, len(in.QuietCand[i]), len(in.QuietBase[i]))
		}
		quiet = max(quiet, maxRel(in.QuietCand[i], in.QuietBase[i], rowRMS(in.QuietBase[i], in.QuietCand[i])))
	}
	d.theta = max(shapeNoiseFloor, shapeNoiseMargin*quiet)
	for r := 0; r < n; r++ {
		for c := 0; c < w; c++ {
			if d.diverges(r, c) {
				d.aff[r*w+c] = true
				d.nAff++
			}
		}
	}
	return d, nil
}

// rowRMS is the root mean square of the finite elements of base (of cand when base has
// none), 1 when both are zero: the yardstick of a row.
func rowRMS(base, cand []float32) float64 {
	for _, row := range [][]float32{base, cand} {
		s, k := 0.0, 0
		for _, x := range row {
			if v := float64(x); !math.IsNaN(v) && !math.IsInf(v, 0) {
				s += v * v
				k++
			}
		}
		if s > 0 {
			return math.Sqrt(s / float64(k))
		}
	}
	return 1
}

// relDiff is |c-b| over the element's yardstick |b| + 0.1*rms; NaN when either is not finite.
func relDiff(c, b float32, rms float64) float64 {
	return math.Abs(float64(c)-float64(b)) / (math.Abs(float64(b)) + shapeRowShare*rms)
}

// maxRel is the largest relDiff of two rows over their finite elements.
func maxRel(cand, base []float32, rms float64) float64 {
	m := 0.0
	for i := range base {
		if r := relDiff(cand[i], base[i], rms); r > m && !math.IsInf(r, 0) { // NaN never wins
			m = r
		}
	}
	return m
}

func finite(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }

// differs reports whether the element's bits differ (two NaNs count as equal).
func (d *shapeData) differs(r, c int) bool {
	x, y := d.in.Cand[r][c], d.in.Base[r][c]
	return math.Float32bits(x) != math.Float32bits(y) && !(x != x && y != y)
}

// diverges reports whether the element differs beyond the noise.
func (d *shapeData) diverges(r, c int) bool {
	x, y := d.in.Cand[r][c], d.in.Base[r][c]
	if !finite(x) || !finite(y) {
		return d.differs(r, c)
	}
	return relDiff(x, y, d.rms[r]) > d.theta
}

// tol is how far an element may lie from a prediction and still agree: the noise.
func (d *shapeData) tol(r int, b float32) float64 {
	return d.theta * (math.Abs(float64(b)) + shapeRowShare*d.rms[r])
}

func (d *shapeData) perHead() bool {
	return d.in.Stage >= QPreRope && d.in.Stage <= AttnCtx && d.in.HeadDim > 0 && d.w%d.in.HeadDim == 0
}

// each calls f for every divergent element of the rows lo..hi-1.
func (d *shapeData) each(lo, hi int, f func(r, c int, x, y float32)) {
	for r := lo; r < hi; r++ {
		for c, a := range d.aff[r*d.w : (r+1)*d.w] {
			if a {
				f(r, c, d.in.Cand[r][c], d.in.Base[r][c])
			}
		}
	}
}

// agree reports whether ok holds for 99.5% of the divergent elements of rows lo..hi-1.
func (d *shapeData) agree(lo, hi int, ok func(r, c int, x, y float32) bool) bool {
	yes, all := 0, 0
	d.each(lo, hi, func(r, c int, x, y float32) {
		all++
		if ok(r, c, x, y) {
			yes++
		}
	})
	return all > 0 && float64(yes) >= shapeAgree*float64(all)
}

// fitKind finds the kind that explains the divergent elements and sets the model.
func (d *shapeData) fitKind() ErrorKind {
	if k, ok := d.fitRows(0, d.n); ok {
		return k
	}
	if k, ok := d.fitMove(); ok {
		return k
	}
	// A kind for each position, not the same for all: group the rows by kind.
	type group struct {
		kind     ErrorKind
		rows     int
		lo, hi   float64 // the range of the kind's number
		numbered bool
	}
	var groups []*group
	for r := 0; r < d.n; r++ {
		if !slices.Contains(d.aff[r*d.w:(r+1)*d.w], true) {
			continue
		}
		k, ok := d.fitRows(r, r+1)
		if !ok {
			groups = nil
			break
		}
		x, numbered := k.number()
		i := slices.IndexFunc(groups, func(g *group) bool { return g.kind.Name == k.Name })
		if i < 0 {
			groups = append(groups, &group{kind: k, lo: x, hi: x, numbered: numbered})
			i = len(groups) - 1
		}
		g := groups[i]
		g.rows++
		g.lo, g.hi = min(g.lo, x), max(g.hi, x)
	}
	d.model = allVisible
	if len(groups) > 1 || len(groups) == 1 && groups[0].lo != groups[0].hi {
		parts := make([]string, len(groups))
		for i, g := range groups {
			parts[i] = fmt.Sprintf("%s at %s", g.kind.text(), plural(g.rows, "position"))
			if g.numbered && g.lo != g.hi {
				parts[i] = fmt.Sprintf("%s from %s to %s at %s", g.kind.Name, sig(g.lo), sig(g.hi), plural(g.rows, "position"))
			}
		}
		return d.ulps(ErrorKind{Name: KindMixed, Detail: strings.Join(parts, "; ")}, nil)
	}
	k := d.ulps(ErrorKind{Name: KindUnrecognised}, nil)
	if d.noiseLike(&k) {
		k.Name, d.sparse = KindNoise, true
		return k
	}
	k.Detail = fmt.Sprintf("median relative error %s, %s of the differences positive; no single scale, offset, rounding, sign flip, zero, NaN/Inf or row move explains them",
		formatNum(k.RelMedian), percent(d.positive(), 100))
	return k
}

// fitRows tries the element-wise kinds on rows lo..hi-1; on success it sets the model.
func (d *shapeData) fitRows(lo, hi int) (ErrorKind, bool) {
	is := func(name KindName, ok func(r, c int, x, y float32) bool, model func(y float32) float32) (ErrorKind, bool) {
		if !d.agree(lo, hi, ok) {
			return ErrorKind{}, false
		}
		d.model = func(r, c int) (float32, bool) { return model(d.in.Base[r][c]), true }
		return d.ulps(ErrorKind{Name: name}, nil), true
	}
	nan := float32(math.NaN())
	if k, ok := is(KindNaN, func(_, _ int, x, y float32) bool { return x != x && y == y }, func(float32) float32 { return nan }); ok {
		return k, true
	}
	if k, ok := is(KindInf, func(_, _ int, x, y float32) bool { return math.IsInf(float64(x), 0) && finite(y) },
		func(y float32) float32 { return float32(math.Inf(1)) }); ok {
		return k, true
	}
	if k, ok := is(KindZero, func(_, _ int, x, y float32) bool { return x == 0 }, func(float32) float32 { return 0 }); ok {
		return k, true
	}
	if k, ok := is(KindSign, func(r, _ int, x, y float32) bool { return math.Abs(float64(x)+float64(y)) <= d.tol(r, y) },
		func(y float32) float32 { return -y }); ok {
		return k, true
	}
	if k, ok := is(KindRoundBF16, func(r, _ int, x, y float32) bool {
		return math.Float32bits(x)&0xffff == 0 && math.Abs(float64(x)-float64(y)) <= halfULP(x, y, 8)+d.tol(r, y)
	}, RoundBF16); ok {
		return k, true
	}
	if k, ok := is(KindRoundF16, func(r, _ int, x, y float32) bool { return d.roundedF16(r, x, y) }, RoundF16); ok {
		return k, true
	}
	if !d.agree(lo, hi, func(_, _ int, x, y float32) bool { return finite(x) && finite(y) }) {
		return ErrorKind{}, false
	}
	// A scale, an offset, or both, by least squares.
	var n, sb, sc, sbb, sbc float64
	var diffs []float64
	d.each(lo, hi, func(_, _ int, x, y float32) {
		b, c := float64(y), float64(x)
		n, sb, sc, sbb, sbc = n+1, sb+b, sc+c, sbb+b*b, sbc+b*c
		diffs = append(diffs, c-b)
	})
	line := func(k, a float64) func(r, c int, x, y float32) bool {
		return func(r, _ int, x, y float32) bool {
			b := float64(y)
			return math.Abs(float64(x)-(k*b+a)) <= shapeFitSlack*(math.Abs(k-1)*math.Abs(b)+math.Abs(a))+d.tol(r, y)
		}
	}
	fits := func(name KindName, k, a float64) (ErrorKind, bool) {
		if !d.agree(lo, hi, line(k, a)) {
			return ErrorKind{}, false
		}
		d.model = func(r, c int) (float32, bool) { return float32(k*float64(d.in.Base[r][c]) + a), true }
		return d.ulps(ErrorKind{Name: name, Factor: k, Offset: a}, nil), true
	}
	if sbb > 0 {
		if k, ok := fits(KindScale, sbc/sbb, 0); ok {
			return k, true
		}
	}
	sort.Float64s(diffs)
	if k, ok := fits(KindOffset, 1, diffs[len(diffs)/2]); ok {
		return k, true
	}
	if v := sbb - sb*sb/n; v > 0 {
		k := (sbc - sb*sc/n) / v
		if k, ok := fits(KindAffine, k, (sc-k*sb)/n); ok {
			return k, true
		}
	}
	return ErrorKind{}, false
}

// roundedF16 reports whether x is y rounded to half precision (up to the noise): x is a
// half value within half a half-ulp of y, or y is past half's range and x infinite.
func (d *shapeData) roundedF16(r int, x, y float32) bool {
	if math.IsInf(float64(x), 0) {
		return math.Abs(float64(y)) >= 65504 && math.Signbit(float64(x)) == math.Signbit(float64(y))
	}
	if RoundF16(x) != x {
		return false
	}
	hu := halfULP(x, y, 11)
	if m := max(math.Abs(float64(x)), math.Abs(float64(y))); m < 0x1p-14 {
		hu = 0x1p-25 // half's subnormals are 2^-24 apart
	}
	return math.Abs(float64(x)-float64(y)) <= hu+d.tol(r, y)
}

// halfULP is half the spacing of a format with the given significand bits around the larger
// of |x| and |y|.
func halfULP(x, y float32, bits int) float64 {
	m := max(math.Abs(float64(x)), math.Abs(float64(y)))
	_, e := math.Frexp(m) // m = f * 2^e, f in [0.5, 1)
	return math.Ldexp(1, e-bits-1)
}

// fitMove looks for rows that hold other positions' baseline rows: one shift for all, or
// a source for each.
func (d *shapeData) fitMove() (ErrorKind, bool) {
	var rows []int
	cnt := make([]int, d.w)
	for r := 0; r < d.n; r++ {
		any := false
		for c, a := range d.aff[r*d.w : (r+1)*d.w] {
			if a {
				cnt[c]++
				any = true
			}
		}
		if any {
			rows = append(rows, r)
		}
	}
	var chans []int // the channels that move: divergent in a quarter of the rows
	for c, k := range cnt {
		if k > 0 && 4*k >= len(rows) {
			chans = append(chans, c)
		}
	}
	if len(chans) == 0 {
		return ErrorKind{}, false
	}
	holds := func(r, q int) bool { // row r of the candidate is row q of the baseline
		if q == r {
			return false
		}
		for _, c := range chans {
			x, y := d.in.Cand[r][c], d.in.Base[q][c]
			if !finite(x) || !finite(y) || math.Abs(float64(x)-float64(y)) > d.theta*(math.Abs(float64(y))+shapeRowShare*d.rms[q]) {
				return false
			}
		}
		return true
	}
	index := map[int]int{}
	for i, p := range d.in.Pos {
		index[p] = i
	}
	// One shift for every row: try each K the first row allows. Rows whose source lies
	// outside the positions compared cannot tell.
	shift, shiftSrc, explained := 0, []int(nil), 0
	for q := 0; q < d.n && explained < len(rows); q++ {
		if !holds(rows[0], q) {
			continue
		}
		k := d.in.Pos[rows[0]] - d.in.Pos[q]
		src, checked := make([]int, d.n), 0
		for i := range src {
			src[i] = -1
		}
		for _, r := range rows {
			s, has := index[d.in.Pos[r]-k]
			if !has && d.in.Pos[r]-k >= d.in.Pos[0] && d.in.Pos[r]-k <= d.in.Pos[d.n-1] || has && !holds(r, s) {
				checked = -1
				break
			}
			if has {
				src[r] = s
				checked++
			}
		}
		if checked > explained {
			shift, shiftSrc, explained = k, src, checked
		}
	}
	shifted := func() (ErrorKind, bool) { // every row with a source takes it
		for r, p := range d.in.Pos {
			if s, has := index[p-shift]; has {
				shiftSrc[r] = s
			}
		}
		d.moveModel(shiftSrc)
		return d.ulps(ErrorKind{Name: KindShift, Shift: shift}, nil), true
	}
	if explained == len(rows) {
		return shifted()
	}
	// A source for each row (a bounded search), else the shift that explains most rows.
	src, found := make([]int, d.n), len(rows) <= shapeMoveRows
	for i := range src {
		src[i] = -1
	}
	for _, r := range rows {
		for q := 0; found && q < d.n && src[r] < 0; q++ {
			if holds(r, q) {
				src[r] = q
			}
		}
		found = found && src[r] >= 0
	}
	if !found {
		if explained >= 2 && 2*explained >= len(rows) {
			return shifted()
		}
		return ErrorKind{}, false
	}
	swap := true
	var pairs [][2]int
	for _, r := range rows {
		s := src[r]
		swap = swap && src[s] == r
		if !swap || r < s {
			pairs = append(pairs, [2]int{d.in.Pos[r], d.in.Pos[s]})
		}
	}
	d.moveModel(src)
	if swap {
		return d.ulps(ErrorKind{Name: KindSwap}, pairs), true
	}
	pairs = pairs[:0]
	for _, r := range rows {
		pairs = append(pairs, [2]int{d.in.Pos[r], d.in.Pos[src[r]]})
	}
	return d.ulps(ErrorKind{Name: KindMoved}, pairs), true
}

// moveModel predicts row r as the baseline's row src[r] (nothing where src[r] < 0): where
// the two rows agree, a move cannot be seen.
func (d *shapeData) moveModel(src []int) {
	src = slices.Clone(src)
	d.model = func(r, c int) (float32, bool) {
		if src[r] < 0 {
			return 0, false
		}
		return d.in.Base[src[r]][c], true
	}
}

// ulps fills k's sizes over the divergent elements, and its pairs (at most shapeListMax).
func (d *shapeData) ulps(k ErrorKind, pairs [][2]int) ErrorKind {
	var u, rel []float64
	d.each(0, d.n, func(_, _ int, x, y float32) {
		if finite(x) && finite(y) {
			u = append(u, ulpDistance(x, y))
			if y != 0 {
				rel = append(rel, math.Abs(float64(x)-float64(y))/math.Abs(float64(y)))
			}
		}
	})
	if len(u) > 0 {
		sort.Float64s(u)
		k.ULPMedian, k.ULPMax = u[len(u)/2], u[len(u)-1]
	}
	if len(rel) > 0 {
		sort.Float64s(rel)
		k.RelMedian = rel[len(rel)/2]
	}
	if len(pairs) > shapeListMax {
		pairs = pairs[:shapeListMax]
	}
	k.Pairs = slices.Clone(pairs)
	return k
}

// ulpDistance counts the float32 values between x and y.
func ulpDistance(x, y float32) float64 {
	ord := func(f float32) int64 {
		b := int64(math.Float32bits(f))
		if b&0x80000000 != 0 {
			return -(b & 0x7fffffff)
		}
		return b
	}
	return math.Abs(float64(ord(x) - ord(y)))
}

// positive is the percentage of divergent elements where the candidate is the larger.
func (d *shapeData) positive() int {
	pos, all := 0, 0
	d.each(0, d.n, func(_, _ int, x, y float32) {
		all++
		if x > y {
			pos++
		}
	})
	if all == 0 {
		return 0
	}
	return 100 * pos / all
}

// noiseLike reports whether unexplained differences look like rounding or accumulation
// noise: both signs alike, and small (a median within 2^-7 relative).
func (d *shapeData) noiseLike(k *ErrorKind) bool {
	p := d.positive()
	return p >= 20 && p <= 80 && k.RelMedian <= 0x1p-7
}

// Where an element, row or channel stands.
const (
	clsUnknown = iota // no visible change predicted, none seen: says nothing
	clsIn             // divergent
	clsOut            // a change was predicted (or could be seen) and none is there
)

// visible reports whether the fitted kind predicts a change above the noise at (r, c);
// without a model every element could show one.
func (d *shapeData) visible(r, c int) bool {
	v, known := d.model(r, c)
	if !known {
		return true
	}
	b := d.in.Base[r][c]
	if !finite(v) || !finite(b) {
		return math.Float32bits(v) != math.Float32bits(b)
	}
	return relDiff(v, b, d.rms[r]) > d.theta
}

// classify sorts rows and channels into divergent, clean and unknown: a row is divergent
// when at least half of the elements where the kind would show (and one at least) diverge,
// over the channels that diverge in some row; channels likewise over the divergent rows.
func (d *shapeData) classify() (rows, chans []int) {
	count := func(n int, cross []int, at func(i, j int) int) []int {
		cls := make([]int, n)
		for i := range cls {
			in, vis := 0, 0
			for _, j := range cross {
				k := at(i, j)
				r, c := k/d.w, k%d.w
				if d.aff[k] {
					in++
				}
				if d.aff[k] || d.visible(r, c) {
					vis++
				}
			}
			switch {
			case in > 0 && (2*in >= vis || d.sparse):
				cls[i] = clsIn
			case vis > 0:
				cls[i] = clsOut
			}
		}
		return cls
	}
	// When no line holds half, every line with a divergence counts.
	fallback := func(cls []int, has func(i int) bool) {
		if slices.Contains(cls, clsIn) {
			return
		}
		for i := range cls {
			if has(i) {
				cls[i] = clsIn
			}
		}
	}
	// The channels that diverge anywhere, then the rows over them, then the channels over
	// the divergent rows.
	var anyChan []int
	for c := 0; c < d.w; c++ {
		for r := 0; r < d.n; r++ {
			if d.aff[r*d.w+c] {
				anyChan = append(anyChan, c)
				break
			}
		}
	}
	rows = count(d.n, anyChan, func(r, c int) int { return r*d.w + c })
	fallback(rows, func(r int) bool { return slices.Contains(d.aff[r*d.w:(r+1)*d.w], true) })
	var inRows []int
	for r, k := range rows {
		if k == clsIn {
			inRows = append(inRows, r)
		}
	}
	chans = count(d.w, inRows, func(c, r int) int { return r*d.w + c })
	fallback(chans, func(c int) bool {
		return slices.ContainsFunc(inRows, func(r int) bool { return d.aff[r*d.w+c] })
	})
	return rows, chans
}

func seqInts(lo, hi int) []int {
	out := make([]int, hi-lo)
	for i := range out {
		out[i] = lo + i
	}
	return out
}

// positionShape finds the pattern of the divergent rows (Unknown rows fit any pattern).
func (d *shapeData) positionShape(cls []int) PositionShape {
	pos := d.in.Pos
	var in []int
	for i, k := range cls {
		if k == clsIn {
			in = append(in, pos[i])
		}
	}
	s := PositionShape{First: in[0], Last: in[len(in)-1], Count: len(in)}
	s.Decode = s.First >= d.in.NPrompt && pos[0] < d.in.NPrompt
	outAfter, outBetween := false, false
	for i, p := range pos {
		if cls[i] != clsOut || p < s.First {
			continue
		}
		switch {
		case p > s.Last:
			outAfter = true
		default:
			outBetween = true
		}
	}
	switch {
	case len(in) == 1:
		s.Pattern = PositionsOnly
	case !outBetween && !outAfter && s.First == pos[0]:
		s.Pattern = PositionsAll
	case !outBetween && !outAfter:
		s.Pattern = PositionsFrom
	case !outBetween:
		s.Pattern = PositionsRange
	}
	if s.Pattern != "" {
		return s
	}
	// Periodic: the gcd of the gaps, every position in the phase divergent or unknown up to
	// Last, every other one clean or unknown.
	g := 0
	for i := 1; i < len(in); i++ {
		g = gcd(g, in[i]-in[i-1])
	}
	if g >= 2 && len(in) >= 3 {
		ok, ends := true, false
		for i, p := range pos {
			inPhase := p >= s.First && (p-s.First)%g == 0
			switch {
			case p > s.Last && inPhase && cls[i] == clsOut:
				ends = true
			case p > s.Last:
			case inPhase && cls[i] == clsOut, !inPhase && cls[i] == clsIn:
				ok = false
			}
		}
		if ok {
			s.Pattern, s.Period, s.Phase, s.Ends = PositionsPeriodic, g, s.First%g, ends
			return s
		}
	}
	s.Pattern = PositionsScattered
	s.List = in[:min(len(in), shapeListMax)]
	return s
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// channelShape finds the pattern of the divergent channels: a contiguous span (through
// unknown channels, widened to whole heads or the whole row when only unknown channels are
// in the way), whole heads, or scattered.
func (d *shapeData) channelShape(cls []int, nHeads int) ChannelShape {
	s := ChannelShape{NHeads: nHeads, Lo: -1}
	for c, k := range cls {
		if k == clsIn {
			if s.Lo < 0 {
				s.Lo = c
			}
			s.Hi = c
			s.Count++
		}
	}
	hd := d.in.HeadDim
	clean := func(lo, hi int) bool { // no clean channel in lo..hi
		return !slices.Contains(cls[max(lo, 0):min(hi+1, d.w)], clsOut)
	}
	if clean(s.Lo, s.Hi) {
		if clean(0, s.Lo) && clean(s.Hi, d.w-1) {
			s.Lo, s.Hi = 0, d.w-1
		} else if nHeads > 0 && clean(s.Lo-s.Lo%hd, s.Lo) && clean(s.Hi, s.Hi-s.Hi%hd+hd-1) {
			s.Lo, s.Hi = s.Lo-s.Lo%hd, s.Hi-s.Hi%hd+hd-1
		}
		switch {
		case s.Lo == 0 && s.Hi == d.w-1:
			s.Pattern = ChannelsAll
		case nHeads > 0 && s.Lo%hd == 0 && (s.Hi+1)%hd == 0:
			s.Pattern, s.Heads = ChannelsHeads, seqInts(s.Lo/hd, (s.Hi+1)/hd)
		case s.Lo == s.Hi:
			s.Pattern = ChannelsOne
		default:
			s.Pattern = ChannelsRange
		}
		return s
	}
	if nHeads > 0 {
		var heads []int
		whole := true
		for h := 0; h < nHeads; h++ {
			part := cls[h*hd : (h+1)*hd]
			hasIn, hasOut := slices.Contains(part, clsIn), slices.Contains(part, clsOut)
			if hasIn && hasOut {
				whole = false
			}
			if hasIn {
				heads = append(heads, h)
			}
		}
		if whole {
			s.Pattern, s.Heads = ChannelsHeads, heads
			return s
		}
	}
	s.Pattern = ChannelsScattered
	return s
}

// growth is how much the relative error grows along the positions: the mean over the last
// quarter of the rows that differ at all over the mean over the first quarter (1 when it
// cannot be told). Rows are measured over the divergent channels.
func (d *shapeData) growth(chans []int) float64 {
	var errs []float64
	for r := 0; r < d.n; r++ {
		var num, den float64
		for c, kc := range chans {
			if kc == clsIn {
				x, y := float64(d.in.Cand[r][c]), float64(d.in.Base[r][c])
				num += (x - y) * (x - y)
				den += y * y
			}
		}
		if num > 0 && den > 0 && !math.IsNaN(num) && !math.IsInf(num, 0) {
			errs = append(errs, math.Sqrt(num/den))
		}
	}
	if len(errs) < 8 {
		return 1
	}
	q := len(errs) / 4
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	return mean(errs[len(errs)-q:]) / mean(errs[:q])
}

// hypothesis maps a shape onto the seed's four hypotheses, first rule that fits.
func hypothesis(sh *Shape, nPrompt int, growth float64) (Hypothesis, string) {
	st, k, pos, ch := sh.Stage, sh.Kind, sh.Positions, sh.Channels
	partial := ch.Pattern != ChannelsAll
	switch {
	case k.Name == KindShift || k.Name == KindSwap || k.Name == KindMoved:
		what := "rows land at the wrong positions"
		if k.Name == KindShift {
			what = fmt.Sprintf("each row holds the clean row of the position %d %s", abs(k.Shift), earlierLater(k.Shift))
		}
		if st == KPostRope || st == V || st == AttnCtx {
			return HypothesisKVCache, fmt.Sprintf("%s at %s: a slot index into the KV cache is off", what, st)
		}
		return HypothesisMemoryLayout, fmt.Sprintf("%s at %s: an index or stride into the rows is off", what, st)
	case pos.Decode && pos.Pattern != PositionsScattered:
		return HypothesisKVCache, fmt.Sprintf("the %d prompt positions are clean and the decode positions diverge: the decode path, which reads the KV cache, differs from the prefill", nPrompt)
	case k.Name == KindNoise && (st == QPostRope || st == KPostRope) && growth >= 2:
		return HypothesisPositionEncoding, fmt.Sprintf("differences of %s ulp (median) with both signs after RoPE, with clean inputs, growing %sx from the first positions that differ to the last: the rotation's angles lose precision as positions grow",
			formatNum(k.ULPMedian), formatNum(growth))
	case k.Name == KindNoise:
		return HypothesisPrecision, fmt.Sprintf("differences of %s ulp (median; at most %s) with both signs: rounding or accumulation order",
			formatNum(k.ULPMedian), formatNum(k.ULPMax))
	case k.Name == KindRoundF16 || k.Name == KindRoundBF16:
		t := strings.TrimPrefix(string(k.Name), "round-")
		return HypothesisPrecision, fmt.Sprintf("every divergent value is exactly a %s value within half a %s ulp of the baseline: %s is stored or computed in %s", t, t, st, t)
	case k.Name == KindInf:
		return HypothesisPrecision, fmt.Sprintf("values overflow to infinity at %s", st)
	case k.Name == KindNaN && !partial && pos.Pattern != PositionsPeriodic:
		return HypothesisPrecision, fmt.Sprintf("NaN in every element of the divergent rows of %s: an invalid operation (0/0, inf-inf) or an overflow upstream in the stage", st)
	case pos.Pattern == PositionsPeriodic:
		return HypothesisMemoryLayout, fmt.Sprintf("every %s position (p %% %d == %d) diverges: a tile or block boundary of %d positions", ordinal(pos.Period), pos.Period, pos.Phase, pos.Period)
	case k.Name == KindZero:
		return HypothesisMemoryLayout, fmt.Sprintf("zeros where values belong at %s: a write that never happened (a missing store, a wrong stride or a block not launched)", st)
	case k.Name == KindNaN:
		return HypothesisMemoryLayout, fmt.Sprintf("NaN in part of the rows of %s: memory read before anything was written", st)
	case st == QPostRope || st == KPostRope:
		return HypothesisPositionEncoding, fmt.Sprintf("%s diverges while %s before RoPE is clean at every position: the rotation (its angles, the position it is given or the pairing of dimensions)",
			st, map[Stage]Stage{QPostRope: QPreRope, KPostRope: KPreRope}[st])
	case st == AttnCtx:
		e := "q, k and v are clean at every position and the attention context is not: attention read keys or values other than those written (the cache's contents, its length or the mask)"
		if ch.Pattern == ChannelsHeads {
			e += fmt.Sprintf(", in %s only", ch.text())
		}
		return HypothesisKVCache, e
	case partial:
		return HypothesisMemoryLayout, fmt.Sprintf("only %s of the rows of %s diverge: an index, stride or head offset into the row", ch.text(), st)
	}
	what := map[KindName]string{
		KindScale: "a uniform scale", KindOffset: "a uniform offset", KindAffine: "a uniform scale and offset",
		KindSign: "a sign flip", KindMixed: "a mix of kinds", KindUnrecognised: "an error of no recognised kind",
	}[k.Name]
	return HypothesisNone, fmt.Sprintf("%s of every element at %s, which is row-local and has clean inputs: a wrong weight, norm or activation factor, not one of the four", what, st)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func earlierLater(k int) string {
	if k < 0 {
		return "later"
	}
	return "earlier"
}

// ordinal writes 2nd, 3rd, 16th, 64th...
func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return strconv.Itoa(n) + suffix
}

// Line is the shape in one line, printed after the FIRST_FAIL line:
//
//	shape: positions >= 826 (all of 826..831); channels: head 1 (of 2); kind: uniform scale x1.02 -> hypothesis: position encoding: k_post_rope diverges while ...
func (sh *Shape) Line() string {
	return fmt.Sprintf("shape: %s; channels: %s; kind: %s -> hypothesis: %s: %s",
		sh.Positions.text(sh.Compared), sh.Channels.text(), sh.Kind.text(), sh.Hypothesis, sh.Evidence)
}

func (p PositionShape) text(compared []int) string {
	lo, hi := compared[0], compared[1]
	decode := ""
	if p.Decode {
		decode = ", decode only"
	}
	switch p.Pattern {
	case PositionsAll:
		return fmt.Sprintf("positions: all (%d..%d)", lo, hi)
	case PositionsFrom:
		return fmt.Sprintf("positions >= %d (all of %d..%d%s)", p.First, p.First, hi, decode)
	case PositionsOnly:
		if p.First == hi {
			return fmt.Sprintf("position %d only (the last compared)", p.First)
		}
		return fmt.Sprintf("position %d only", p.First)
	case PositionsRange:
		return fmt.Sprintf("positions %d..%d (%d of them%s)", p.First, p.Last, p.Count, decode)
	case PositionsPeriodic:
		end := fmt.Sprintf("from %d on", p.First)
		if p.Ends {
			end = fmt.Sprintf("%d..%d", p.First, p.Last)
		}
		return fmt.Sprintf("positions: every %s (p %% %d == %d), %s", ordinal(p.Period), p.Period, p.Phase, end)
	}
	list := make([]string, len(p.List))
	for i, x := range p.List {
		list[i] = strconv.Itoa(x)
	}
	more := ""
	if p.Count > len(p.List) {
		more = ", ..."
	}
	return fmt.Sprintf("positions: %d scattered (%s%s)", p.Count, strings.Join(list, ", "), more)
}

func (c ChannelShape) text() string {
	switch c.Pattern {
	case ChannelsAll:
		return fmt.Sprintf("all %d", c.Hi+1)
	case ChannelsHeads:
		return fmt.Sprintf("%s %s (of %d)", map[bool]string{true: "head", false: "heads"}[len(c.Heads) == 1], intList(c.Heads), c.NHeads)
	case ChannelsRange:
		return fmt.Sprintf("%d..%d (%d channels)", c.Lo, c.Hi, c.Hi-c.Lo+1)
	case ChannelsOne:
		return fmt.Sprintf("one element, channel %d", c.Lo)
	}
	return fmt.Sprintf("%d scattered in %d..%d", c.Count, c.Lo, c.Hi)
}

// intList writes a run of integers as A..B, others comma-separated.
func intList(v []int) string {
	if len(v) > 1 && v[len(v)-1]-v[0] == len(v)-1 {
		return fmt.Sprintf("%d..%d", v[0], v[len(v)-1])
	}
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

func (k ErrorKind) text() string {
	switch k.Name {
	case KindScale:
		return "uniform scale x" + sig(k.Factor)
	case KindOffset:
		return "additive offset " + signed(k.Offset)
	case KindAffine:
		return fmt.Sprintf("scale x%s and offset %s", sig(k.Factor), signed(k.Offset))
	case KindNoise:
		return fmt.Sprintf("ulp-level noise (median %s ulp, max %s): rounding or accumulation order", formatNum(k.ULPMedian), formatNum(k.ULPMax))
	case KindRoundF16:
		return "rounded to f16"
	case KindRoundBF16:
		return "rounded to bf16"
	case KindSign:
		return "sign flipped"
	case KindZero:
		return "zeros (a missing write)"
	case KindNaN:
		return "NaN"
	case KindInf:
		return "Inf"
	case KindShift:
		return fmt.Sprintf("rows shifted by %d (position p holds the row of p%s)", k.Shift, signed(float64(-k.Shift)))
	case KindSwap, KindMoved:
		pairs := make([]string, len(k.Pairs))
		arrow := map[KindName]string{KindSwap: "<->", KindMoved: "<-"}[k.Name]
		for i, p := range k.Pairs {
			pairs[i] = fmt.Sprintf("%d%s%d", p[0], arrow, p[1])
		}
		return fmt.Sprintf("rows %s between positions (%s)", map[KindName]string{KindSwap: "swapped", KindMoved: "moved"}[k.Name], strings.Join(pairs, ", "))
	case KindMixed:
		return "mixed: " + k.Detail
	}
	return "unrecognised: " + k.Detail
}

// number is the kind's number (factor, offset or shift) when it has one.
func (k ErrorKind) number() (float64, bool) {
	switch k.Name {
	case KindScale, KindAffine:
		return k.Factor, true
	case KindOffset:
		return k.Offset, true
	case KindShift:
		return float64(k.Shift), true
	}
	return 0, false
}

// sig writes x with up to 6 significant digits.
func sig(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }

func signed(x float64) string {
	if x >= 0 {
		return "+" + sig(x)
	}
	return sig(x)
}
