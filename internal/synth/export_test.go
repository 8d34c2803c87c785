package synth

// RaceEnabled lets the external tests skip work that only slows the race detector down.
const RaceEnabled = raceEnabled
