package ref

import "github.com/gretabisect/gretabisect/internal/model"

// RopeFreq returns the angular frequency of each RoPE pair i < rope_dim/2 as the reference
// runs it (base^(-2i/rope_dim) divided by factors[i] and by the linear scaling factor, in
// float64 with internal/detmath), so that an engine given its frequencies by the host turns
// by the reference's angles. factors is Weights.RopeFreqs, nil for none.
func RopeFreq(c model.Config, factors []float32) []float64 { return ropeFreq(c, factors) }
