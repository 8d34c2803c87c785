package synth

import "math"

// Weights come from a counter-based splitmix64 stream: element i of a tensor is a function of
// the tensor's base and i alone, so a row can be generated (and a large tensor streamed) in
// any order with the same bytes. Only integer operations touch random bits; the one float
// operation per element is an exact-rounded float64 multiply by a constant, so the values
// are the same on every architecture.

const golden = 0x9e3779b97f4a7c15 // splitmix64's increment (2^64 / phi)

// mix is splitmix64's output function.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// stream is one tensor's random sequence.
type stream struct{ base uint64 }

// newStream derives a tensor's stream from the seed and the tensor name (FNV-1a), so that
// adding a tensor never shifts the values of another.
func newStream(seed uint64, name string) stream {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * 1099511628211
	}
	return stream{base: mix(seed ^ mix(h))}
}

// bell returns element i of the stream as an Irwin-Hall sum of four 16-bit uniforms, centred
// on zero: a bell-shaped integer in [-131070, 131070] with standard deviation bellStd.
func (s stream) bell(i uint64) int64 {
	x := mix(s.base + (i+1)*golden)
	return int64(x&0xffff) + int64(x>>16&0xffff) + int64(x>>32&0xffff) + int64(x>>48) - 2*0xffff
}

// bellStd is the standard deviation of bell: four times the variance (2^32-1)/12 of one
// uniform 16-bit integer.
var bellStd = math.Sqrt((1<<32 - 1) / 3.0)

// dist is a distribution of weights: mean + std * (standardised bell value).
type dist struct {
	Mean, Std float64
}

// fill writes elements first.. first+len(dst)-1 of s, drawn from d, into dst.
func (s stream) fill(dst []float32, first uint64, d dist) {
	k := d.Std / bellStd // math.Sqrt is correctly rounded: k is the same everywhere
	for j := range dst {
		// The explicit float64 conversion keeps arm64 from fusing the multiply and add.
		dst[j] = float32(float64(float64(s.bell(first+uint64(j)))*k) + d.Mean)
	}
}
