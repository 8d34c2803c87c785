//go:build amd64 && !goexperiment.simd && !purego

package ref

import "testing"

// forEachKernel runs f with the SSE kernels and with the Go code.
func forEachKernel(t *testing.T, f func(t *testing.T)) {
	defer func() { useSSE = true }()
	for _, sse := range []bool{false, true} {
		useSSE = sse
		t.Run(Kernel(), f)
	}
}
