package golden

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
)

// Sketch sizes. The L2 part is a Johnson-Lindenstrauss projection with Rademacher (+-1)
// rows: ||S(x-y)||^2/sketchL2 estimates ||x-y||^2 with a chi-square(32) ratio, within 1.5x
// far beyond 99% of the time. The L1 part is a Cauchy projection: each component of C(x-y)
// is Cauchy with scale ||x-y||_1, and the maximum-likelihood scale estimate has a log error
// of standard deviation sqrt(2/64) = 0.18, so 1.5x (log 0.405) holds about 98% of the time.
const (
	sketchL2    = 32
	sketchL1    = 64
	sketchWidth = sketchL2 + sketchL1
	signBytes   = sketchL2 / 8 // the Rademacher coefficients of one element, as bits

	// SketchVersion changes whenever the projection changes: sketches of different versions
	// are not comparable.
	SketchVersion = 1

	// Encoded layout: ||x||_2 and ||x||_1 as float64, then sketchWidth projections as
	// 48-bit floats (a float64 rounded to its top six bytes: 36 mantissa bits, enough for a
	// relative difference of 1e-6 to keep five significant digits).
	sketchBytes = 2*8 + sketchWidth*6
)

// Sketch is a compact numeric summary of a tensor row from which the relative L2 error
// ||x-y||/||y|| and the mean absolute error of two rows can be estimated without their raw
// values (Estimate). Its JSON takes about 820 bytes whatever the row length.
//
// The projections are fixed per row length, generated from an integer PRNG without
// transcendental functions and accumulated in float64 without fused multiply-adds, so a
// sketch is bit-identical on every machine.
type Sketch struct {
	Version int
	N       int                  // row length
	L2      float64              // ||x||_2
	L1      float64              // ||x||_1
	Proj    [sketchWidth]float64 // sketchL2 Rademacher projections, then sketchL1 Cauchy ones

	// Foreign holds the encoded data of a sketch of another version, which this build
	// cannot decode: it is written back unchanged, and Estimate refuses it. Empty for
	// sketches of SketchVersion.
	Foreign string
}

// NewSketch summarises row.
func NewSketch(row []float32) *Sketch {
	var sum sums
	accumulate(&sum, row, projection(len(row)))
	return sum.sketch(len(row))
}

// sketch returns the sketch of a row of n elements whose terms sum holds.
func (sum *sums) sketch(n int) *Sketch {
	return &Sketch{Version: SketchVersion, N: n, L2: math.Sqrt(sum.norms[0]), L1: sum.norms[1], Proj: sum.proj}
}

// sums are the running sums of a sketch.
type sums struct {
	norms [2]float64           // of x*x and of |x|
	proj  [sketchWidth]float64 // of the products with each projection's coefficients
}

// accumulatePortable adds row's terms to sum. Each sum runs over the elements in order, one
// rounded product then one rounded sum per element (never a fused multiply-add), so every
// implementation of accumulate that keeps this order gives the same bits on every machine,
// however many sums it computes side by side.
func accumulatePortable(sum *sums, row []float32, t *projTable) {
	for _, v := range row {
		x := float64(v)
		sum.norms[0] += float64(x * x)
		sum.norms[1] += math.Abs(x)
	}
	// Blocks of elements times eight projections: the eight sums stay in registers over a
	// block whose coefficients stay in the first-level cache.
	const block = 64
	for i0 := 0; i0 < len(row); i0 += block {
		r := row[i0:min(i0+block, len(row))]
		el := t.elems[i0 : i0+len(r)]
		for g := range signBytes {
			s := (*[8]float64)(sum.proj[8*g:])
			s0, s1, s2, s3, s4, s5, s6, s7 := s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
			for i, v := range r {
				x := float64(v)
				c := &signVec[el[i].signs[g]]
				s0 += float64(c[0] * x)
				s1 += float64(c[1] * x)
				s2 += float64(c[2] * x)
				s3 += float64(c[3] * x)
				s4 += float64(c[4] * x)
				s5 += float64(c[5] * x)
				s6 += float64(c[6] * x)
				s7 += float64(c[7] * x)
			}
			*s = [8]float64{s0, s1, s2, s3, s4, s5, s6, s7}
		}
		for j := 0; j < sketchL1; j += 8 {
			s := (*[8]float64)(sum.proj[sketchL2+j:])
			s0, s1, s2, s3, s4, s5, s6, s7 := s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
			for i, v := range r {
				x := float64(v)
				c := (*[8]float32)(el[i].cauchy[j:])
				s0 += float64(float64(c[0]) * x)
				s1 += float64(float64(c[1]) * x)
				s2 += float64(float64(c[2]) * x)
				s3 += float64(float64(c[3]) * x)
				s4 += float64(float64(c[4]) * x)
				s5 += float64(float64(c[5]) * x)
				s6 += float64(float64(c[6]) * x)
				s7 += float64(float64(c[7]) * x)
			}
			*s = [8]float64{s0, s1, s2, s3, s4, s5, s6, s7}
		}
	}
}

// Diff is the size of the difference between a candidate row x and a baseline row y.
type Diff struct {
	RelL2 float64 // ||x-y||_2 / ||y||_2 (0 when both are zero, +Inf when only y is)
	MAE   float64 // ||x-y||_1 / n
	Exact bool    // computed from raw values rather than estimated from sketches
}

// ExactDiff computes the difference of two rows of equal length in float64.
func ExactDiff(x, y []float32) (Diff, error) {
	if len(x) != len(y) {
		return Diff{}, fmt.Errorf("row lengths differ: %d and %d", len(x), len(y))
	}
	var d2, d1, y2 float64
	for i := range x {
		d := float64(x[i]) - float64(y[i])
		d2 += float64(d * d)
		d1 += math.Abs(d)
		y2 += float64(float64(y[i]) * float64(y[i]))
	}
	df := Diff{RelL2: relative(math.Sqrt(d2), math.Sqrt(y2)), Exact: true}
	if len(x) > 0 {
		df.MAE = d1 / float64(len(x))
	}
	return df, nil
}

// Estimate estimates the difference between the row s summarises (the candidate) and the
// row base summarises (the baseline).
func (s *Sketch) Estimate(base *Sketch) (Diff, error) {
	if s.Version != base.Version {
		return Diff{}, fmt.Errorf("sketch versions differ: %d and %d", s.Version, base.Version)
	}
	if s.Version != SketchVersion {
		return Diff{}, fmt.Errorf("sketch version %d, this build reads %d", s.Version, SketchVersion)
	}
	if s.N != base.N {
		return Diff{}, fmt.Errorf("row lengths differ: %d and %d", s.N, base.N)
	}
	if s.N == 0 {
		return Diff{}, nil
	}
	var sq float64
	for j := 0; j < sketchL2; j++ {
		d := s.Proj[j] - base.Proj[j]
		sq += float64(d * d)
	}
	var z [sketchL1]float64
	for j := range z {
		z[j] = s.Proj[sketchL2+j] - base.Proj[sketchL2+j]
	}
	return Diff{
		RelL2: relative(math.Sqrt(sq/sketchL2), base.L2),
		MAE:   cauchyScale(z[:]) / float64(s.N),
	}, nil
}

func relative(d, ref float64) float64 {
	if d == 0 {
		return 0
	}
	return d / ref // +Inf when ref is 0; NaN propagates
}

// cauchyScale returns the maximum-likelihood scale g of zero-centred Cauchy samples z: the
// root of sum t/(t+z^2) = k/2 in t = g^2, whose left side increases with t. It needs only
// arithmetic and square roots, so the estimate is the same on every machine.
func cauchyScale(z []float64) float64 {
	sq := make([]float64, 0, len(z))
	zeros := 0
	for _, v := range z {
		if v != v {
			return math.NaN()
		}
		if v == 0 {
			zeros++
		}
		sq = append(sq, float64(v*v))
	}
	if 2*zeros >= len(z) {
		return 0
	}
	half := float64(float64(len(z)) * 0.5) // rounded here, so "s - half" below is not fused
	f := func(t float64) float64 {
		var s float64
		for _, q := range sq {
			s += t / (t + q)
		}
		return s - half
	}
	sort.Float64s(sq)
	m := sq[len(sq)/2] // the median of z^2, > 0 since fewer than half are zero
	if math.IsInf(m, 0) {
		return math.Inf(1)
	}
	lo, hi := m, m
	for i := 0; i < 1100 && f(lo) > 0; i++ {
		lo /= 4
	}
	for i := 0; i < 1100 && f(hi) < 0; i++ {
		hi *= 4
	}
	for i := 0; i < 100 && hi > lo*(1+1e-12); i++ {
		mid := float64(math.Sqrt(lo) * math.Sqrt(hi)) // rounded before f adds to it: no FMA on arm64
		if f(mid) < 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Sqrt(math.Sqrt(lo) * math.Sqrt(hi))
}

// kernel is an implementation of accumulate, named for tests and benchmarks.
type kernel struct {
	name string
	f    func(sum *sums, row []float32, t *projTable)
}

// projTable holds the coefficients for rows of one length, element by element, so one
// pass over a row reads them in order (260 bytes an element, 8.3 MB for n = 32000).
type projTable struct {
	elems []projElem
}

// projElem holds the coefficients of one element i.
type projElem struct {
	cauchy [sketchL1]float32 // coefficient (i, sketchL2+k) is cauchy[k]: standard Cauchy variates
	signs  [signBytes]uint8  // coefficient (i, 8g+k) is -1 when bit k of signs[g] is set, else +1
}

// signVec[b][k] is -1 when bit k of b is set, else +1: eight Rademacher coefficients from a
// byte of projElem.signs, multiplied like any other coefficient.
var signVec = func() (v [256][8]float64) {
	for b := range v {
		for k := range v[b] {
			v[b][k] = float64(1 - 2*(b>>k&1))
		}
	}
	return v
}()

var (
	projMu    sync.Mutex
	projCache = map[int]*projTable{}
)

// projection returns newProjection(n), built once per length and shared.
func projection(n int) *projTable {
	projMu.Lock()
	defer projMu.Unlock()
	if t, ok := projCache[n]; ok {
		return t
	}
	t := newProjection(n)
	projCache[n] = t
	return t
}

// newProjection returns the coefficients for rows of length n. The generator draws them
// element by element: for each element the signs, then the Cauchy variates.
func newProjection(n int) *projTable {
	t := &projTable{elems: make([]projElem, n)}
	rng := splitmix64{state: uint64(n)*0xD1B54A32D192ED03 + SketchVersion}
	for i := range t.elems {
		e := &t.elems[i]
		for j := 0; j < sketchL2; j++ {
			e.signs[j/8] |= uint8(rng.next()>>63) << (j % 8)
		}
		for k := range e.cauchy {
			e.cauchy[k] = float32(rng.cauchy())
		}
	}
	return t
}

type splitmix64 struct{ state uint64 }

func (r *splitmix64) next() uint64 {
	r.state += 0x9E3779B97F4A7C15
	z := r.state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// uniform returns a float64 uniform in [-1, 1) on a grid of 2^-52.
func (r *splitmix64) uniform() float64 {
	return float64(int64(r.next()>>11)-1<<52) / (1 << 52)
}

// cauchy returns a standard Cauchy variate: the ratio u/v of a point uniform in the unit
// disk is tan of a uniform angle. No transcendental function, so every machine agrees.
func (r *splitmix64) cauchy() float64 {
	for {
		u, v := r.uniform(), r.uniform()
		if v != 0 && float64(u*u)+float64(v*v) <= 1 {
			return u / v
		}
	}
}

type sketchJSON struct {
	Version int    `json:"v"`
	N       int    `json:"n"`
	Data    string `json:"d"` // base64 of sketchBytes little-endian bytes
}

// MarshalJSON writes {"v":1,"n":N,"d":"<base64>"}: norms and projections in binary, so NaN
// and infinities (a diverged engine produces them) survive.
func (s *Sketch) MarshalJSON() ([]byte, error) {
	if s.Version != SketchVersion {
		return json.Marshal(sketchJSON{s.Version, s.N, s.Foreign})
	}
	var b [sketchBytes]byte
	binary.LittleEndian.PutUint64(b[0:], math.Float64bits(s.L2))
	binary.LittleEndian.PutUint64(b[8:], math.Float64bits(s.L1))
	for j, v := range s.Proj {
		putFloat48(b[16+6*j:], v)
	}
	return json.Marshal(sketchJSON{s.Version, s.N, base64.StdEncoding.EncodeToString(b[:])})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Sketch) UnmarshalJSON(data []byte) error {
	var j sketchJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	if j.N < 0 {
		return errors.New("sketch: negative row length")
	}
	*s = Sketch{Version: j.Version, N: j.N}
	if j.Version != SketchVersion {
		s.Foreign = j.Data
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(j.Data)
	if err != nil {
		return fmt.Errorf("sketch data: %w", err)
	}
	if len(b) != sketchBytes {
		return fmt.Errorf("sketch data: %d bytes, want %d", len(b), sketchBytes)
	}
	s.L2 = math.Float64frombits(binary.LittleEndian.Uint64(b[0:]))
	s.L1 = math.Float64frombits(binary.LittleEndian.Uint64(b[8:]))
	for k := range s.Proj {
		s.Proj[k] = float48(b[16+6*k:])
	}
	return nil
}

// putFloat48 stores v rounded to the top 48 bits of its float64 encoding.
func putFloat48(b []byte, v float64) {
	bits := math.Float64bits(v)
	if v != v {
		bits = 0x7FF8000000000000 // a NaN whose payload survives truncation
	}
	bits = (bits + 0x8000) >> 16
	for i := 0; i < 6; i++ {
		b[i] = byte(bits >> (8 * i))
	}
}

func float48(b []byte) float64 {
	var bits uint64
	for i := 0; i < 6; i++ {
		bits |= uint64(b[i]) << (8 * i)
	}
	return math.Float64frombits(bits << 16)
}
