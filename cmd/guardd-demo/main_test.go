package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoFindGuarddFlag: --guardd names the binary the demo runs, made
// absolute (the demo changes no directory, but says which it runs); a file
// that cannot be run is an error before any user is created. The control:
// the same file made executable is accepted.
func TestDemoFindGuarddFlag(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("guardd", []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	say := func(string, ...any) {}
	if _, _, err := findGuardd("guardd", say); err == nil || !strings.Contains(err.Error(), "not an executable") {
		t.Errorf("--guardd of a mode 0644 file: %v, want not an executable", err)
	}
	if _, _, err := findGuardd("missing", say); err == nil {
		t.Error("--guardd of a missing file: no error")
	}
	if err := os.Chmod("guardd", 0o755); err != nil {
		t.Fatal(err)
	}
	bin, cleanup, err := findGuardd("guardd", say)
	if err != nil {
		t.Fatal(err)
	}
	cleanup()
	if want := filepath.Join(dir, "guardd"); bin != want {
		t.Errorf("--guardd guardd: %q, want %q", bin, want)
	}
}

// TestDemoUsage: flags the demo does not know, and stray arguments, are a
// usage error before anything is created.
func TestDemoUsage(t *testing.T) {
	for _, args := range [][]string{{"--no-such-flag"}, {"extra"}} {
		var out strings.Builder
		if err := run(t.Context(), args, &out, &out); err != errUsage {
			t.Errorf("guardd-demo %v: %v, want a usage error", args, err)
		}
	}
	var out strings.Builder
	if err := run(t.Context(), []string{"-h"}, &out, &out); err == nil || !strings.Contains(out.String(), "--guardd") {
		t.Errorf("guardd-demo -h: %v, usage without --guardd:\n%s", err, out.String())
	}
}
