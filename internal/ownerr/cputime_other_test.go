//go:build !unix

package ownerr_test

// cpuTime is unknown here: the cpu-s metrics read 0.
func cpuTime() float64 { return 0 }
