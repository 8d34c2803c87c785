package golden

import (
	"fmt"
	"slices"
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
