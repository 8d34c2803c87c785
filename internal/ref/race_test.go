//go:build race

package ref

// raceEnabled: the race detector slows the kernels tenfold, so tests shrink their work.
const raceEnabled = true
