//go:build linux

package tests

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// demoBin is guardd-demo, built next to guarddBin on first use (only the
// demo's tests need it), so that `guardd demo` finds it there.
var demoBin = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "guardd-demo")
	return bin, goBuild(bin, "../cmd/guardd-demo")
})

func needDemoBin(t *testing.T) string {
	t.Helper()
	bin, err := demoBin()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// bombScript is the fork bomb of the demo's offenders, as the binary holds
// it.
const bombScript = "b(){ b|b& }"

// offenderSymbols are functions and data of the demo's offenders.
var offenderSymbols = []string{"main.runOffender", "main.demoModes", "main.(*demoOffender).start", "main.reapOrphans"}

// TestDemoNotInDaemonBinary: the root daemon's binary holds no offender
// code: none of the demo's symbols, no fork bomb, and `guardd _offender`
// is an unknown command. The control: guardd-demo holds all three, so the
// checks can see them.
func TestDemoNotInDaemonBinary(t *testing.T) {
	t.Parallel()
	demo := needDemoBin(t)
	symbols := func(bin string) string {
		out, err := exec.Command("go", "tool", "nm", bin).Output()
		if err != nil {
			t.Fatalf("go tool nm %s: %v", bin, err)
		}
		return string(out)
	}
	contains := func(bin, s string) bool {
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Contains(b, []byte(s))
	}
	guarddSyms, demoSyms := symbols(guarddBin), symbols(demo)
	for _, s := range offenderSymbols {
		if strings.Contains(guarddSyms, " "+s+"\n") {
			t.Errorf("guardd's binary has the demo's symbol %s", s)
		}
		if !strings.Contains(demoSyms, " "+s+"\n") {
			t.Errorf("control: guardd-demo's binary has no symbol %s; the check above proves nothing", s)
		}
	}
	if contains(guarddBin, bombScript) {
		t.Errorf("guardd's binary holds the demo's fork bomb %q", bombScript)
	}
	if !contains(demo, bombScript) {
		t.Errorf("control: guardd-demo's binary does not hold %q; the check above proves nothing", bombScript)
	}

	cmd := exec.Command(guarddBin, "_offender", "sleep")
	out, err := cmd.CombinedOutput()
	if code := exitCode(err); code != 2 || !strings.Contains(string(out), `unknown command "_offender"`) {
		t.Errorf("guardd _offender sleep: exit %d (%v), want 2 and unknown command:\n%s", code, err, out)
	}
	// The control: a command guardd knows does not fail that way.
	if out, err := exec.Command(guarddBin, "version").CombinedOutput(); err != nil || strings.Contains(string(out), "unknown command") {
		t.Errorf("control: guardd version: %v\n%s", err, out)
	}
}

// TestDemoLauncher: `guardd demo` runs the guardd-demo next to it on
// itself, with the flags it was given; without one it says where the demo
// went and fails. The stand-in demo prints its arguments.
func TestDemoLauncher(t *testing.T) {
	t.Parallel()
	dir := ExecDir(t)
	bin := filepath.Join(dir, "guardd")
	CopyFile(t, guarddBin, bin, 0o755)
	path := []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"}
	env := append(os.Environ(), "PATH="+strings.Join(path, ":"))

	// No guardd-demo next to it (nor on that PATH).
	for _, d := range path {
		if _, err := os.Stat(filepath.Join(d, "guardd-demo")); err == nil {
			t.Skipf("%s/guardd-demo is installed: the missing case cannot be shown", d)
		}
	}
	out, err := combinedOutput(env, bin, "demo")
	if exitCode(err) != 1 || !strings.Contains(string(out), "go run ./cmd/guardd-demo") {
		t.Errorf("guardd demo without guardd-demo: %v, want exit 1 and where the demo went:\n%s", err, out)
	}

	stub := filepath.Join(dir, "guardd-demo")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\necho \"argv: $*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err = combinedOutput(env, bin, "demo", "--timeout", "7s")
	if want := "argv: --guardd " + bin + " --timeout 7s\n"; err != nil || string(out) != want {
		t.Errorf("guardd demo --timeout 7s ran %q (%v), want %q", out, err, want)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// combinedOutput runs a binary the test just copied, as CombinedOutput
// does, trying again while it is "busy": a child another test forked
// meanwhile holds the copy's write descriptor until it execs
// (golang.org/issue/22315), as startOffender knows too.
func combinedOutput(env []string, bin string, args ...string) ([]byte, error) {
	for try := 0; ; try++ {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if errors.Is(err, syscall.ETXTBSY) && try < 50 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		return out, err
	}
}
