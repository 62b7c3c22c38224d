//go:build !linux

// Command offender misbehaves on purpose for guardd's end-to-end tests,
// which run on Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "offender: Linux only")
	os.Exit(2)
}
