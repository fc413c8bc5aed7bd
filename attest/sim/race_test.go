//go:build race

package sim

// raceEnabled trims the slowest exhaustive tests under the race detector, which slows
// signature verification roughly tenfold and adds nothing to single-goroutine checks.
const raceEnabled = true
