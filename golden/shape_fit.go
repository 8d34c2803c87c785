package golden

// The numbers behind DiagnoseShape: the noise floor, the kinds fitted to the divergent
// elements, and the sorting of rows and channels into divergent, clean and unknown.

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

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
