//go:build !linux

// Command vminit is PID 1 of the Linux test VM that package vmtest boots.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "vminit: Linux only")
	os.Exit(2)
}
