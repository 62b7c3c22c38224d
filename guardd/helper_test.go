package main

import (
	"os"
	"testing"

	"github.com/guardd/guardd/enforce"
)

// TestMain dispatches the helpers the way main does: the self-check runs
// /proc/self/exe, which in a test is this test binary, and without this
// it would run the tests again instead of the helper.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case enforce.HelperSignalUser, enforce.HelperProcCap:
			os.Exit(enforce.RunHelper(os.Args[1:]))
		case probeSyscallCmd:
			os.Exit(runSyscallProbe(os.Args[2:]))
		}
	}
	os.Exit(m.Run())
}
