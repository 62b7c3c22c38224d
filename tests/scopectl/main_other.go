//go:build !linux

// Command scopectl drives enforce's systemd group driver for the
// end-to-end tests, which run on Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "scopectl: Linux only")
	os.Exit(2)
}
