//go:build !(goexperiment.simd && amd64) && (!amd64 || purego)

package ref

import "testing"

// forEachKernel runs f with each kernel implementation: here only the portable one.
func forEachKernel(t *testing.T, f func(t *testing.T)) { t.Run("portable", f) }
