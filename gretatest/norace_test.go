//go:build !race

package gretatest

const raceEnabled = false
