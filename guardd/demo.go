package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// demoProgram is the demo's own binary. The demo and its offenders (a fork
// bomb among them) are not part of the daemon: `guardd demo` only starts
// that program, on this guardd.
const demoProgram = "guardd-demo"

// demoMissing says where the demo went when it is not installed.
const demoMissing = "the demo is a program of its own: install guardd-demo next to guardd or on PATH, or run it from guardd's source tree with: go run ./cmd/guardd-demo"

// runDemo replaces this process with guardd-demo, found next to guardd or
// on PATH, telling it to run this guardd binary.
func runDemo(args []string, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	bin := filepath.Join(filepath.Dir(self), demoProgram)
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath(demoProgram); err != nil {
			fmt.Fprintln(stderr, "guardd demo:", demoMissing)
			return &exitError{code: 1}
		}
	}
	argv := append([]string{demoProgram, "--guardd", self}, args...)
	err = syscall.Exec(bin, argv, os.Environ())
	return fmt.Errorf("demo: exec %s: %w", bin, err)
}
