//go:build linux && race

package tests

// raceEnabled: this test binary was built with -race, so guardd is too.
const raceEnabled = true
