//go:build race

package gretatest

// raceEnabled: the race detector slows the CPU reference tenfold, so tests shrink their work.
const raceEnabled = true
