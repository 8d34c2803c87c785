//go:build !(goexperiment.simd && amd64)

package golden

// kernels are the implementations of accumulate this machine runs, best first.
var kernels = []kernel{{"portable", accumulatePortable}}

// accumulate adds row's terms to sum.
func accumulate(sum *sums, row []float32, t *projTable) { accumulatePortable(sum, row, t) }
