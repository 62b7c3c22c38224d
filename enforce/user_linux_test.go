package enforce

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The watched helper is this test binary (helperExecutable is
// /proc/self/exe), run with one of these words; it behaves as a helper the
// customer interferes with would.
func init() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case "_test-stopped": // stopped by "the customer" twice, then done
		unix.Kill(os.Getpid(), unix.SIGSTOP)
		unix.Kill(os.Getpid(), unix.SIGSTOP)
		os.Exit(0)
	case "_test-killed":
		unix.Kill(os.Getpid(), unix.SIGKILL)
	case "_test-none":
		os.Exit(helperNone)
	case "_test-done":
		os.Stdout.WriteString("out")
		os.Exit(0)
	}
}

func TestHelperWatcher(t *testing.T) {
	e := &Enforcer{}
	run, err := e.runHelperWatched("_test-stopped")
	if err != nil || run.continued != 2 {
		t.Errorf("stopped helper: %+v, %v; want it continued twice and done", run, err)
	}
	// Controls: a helper left alone is continued no time; a killed one is
	// an error that says so; kill(-1) finding nobody is told apart.
	if run, err := e.runHelperWatched("_test-done"); err != nil || run.continued != 0 || run.stdout != "out" || run.none {
		t.Errorf("plain helper: %+v, %v", run, err)
	}
	if _, err := e.runHelperWatched("_test-killed"); err == nil || !strings.Contains(err.Error(), "SIGKILL") {
		t.Errorf("killed helper: %v, want an error naming SIGKILL", err)
	}
	if run, err := e.runHelperWatched("_test-none"); err != nil || !run.none {
		t.Errorf("helper that found nobody: %+v, %v; want none", run, err)
	}
}
