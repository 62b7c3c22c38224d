//go:build linux

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAuditRotation rotates the audit log 1,000 times the way logrotate
// does it (rename, then SIGUSR1) while guardd writes audit lines at every
// tick, and finds every line guardd says it wrote exactly once across the
// files: none lost, none duplicated.
func TestAuditRotation(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	for i := range 8 {
		StartOffender(t, u, "sleep", fmt.Sprint("rotate-", i))
	}
	// A report of every one of the user's processes at every tick: a cheap
	// source of audit lines (no side effect) that keeps coming.
	g := StartGuarddConfig(t, Config{Interval: "100ms", Body: Class(u) + `rule "every" {
  class    = "c"
  when     = proc.age_seconds >= 0
  cooldown = "0s"
  report {}
}
`})
	g.WaitAudit(t, func(e Event) bool { return e.Rule == "every" }, Deadline)
	const rotations = 1000
	var files []string
	deadline := time.Now().Add(3 * time.Minute)
	for i := 1; i <= rotations; i++ {
		rotated := fmt.Sprintf("%s.%d", g.AuditPath, i)
		if err := os.Rename(g.AuditPath, rotated); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
		files = append(files, rotated)
		if err := g.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatalf("rotation %d: SIGUSR1: %v", i, err)
		}
		// Reopened (by the signal, or by the next write): the next rename
		// must find the file.
		for {
			if _, err := os.Stat(g.AuditPath); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rotation %d: %s not recreated", i, g.AuditPath)
			}
			time.Sleep(time.Millisecond)
		}
		// Paced, so that the rotations span about 50 ticks of writes.
		time.Sleep(5 * time.Millisecond)
	}
	// Let a few more ticks write to the last file, then stop guardd so that
	// its log and the files are complete.
	time.Sleep(500 * time.Millisecond)
	g.Stop(t)
	files = append(files, g.AuditPath)

	type id struct {
		at   time.Time
		pid  int32
		step int
	}
	seen := map[id]string{}
	lines, withLines := 0, 0
	for _, f := range files {
		evs, err := ReadAudit(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(evs) > 0 {
			withLines++
		}
		for _, e := range evs {
			if e.Rule != "every" {
				continue
			}
			k := id{e.Time, e.PID, e.Step}
			if prev, dup := seen[k]; dup {
				t.Errorf("audit line for pid %d at %s in %s and in %s", e.PID, e.Time, filepath.Base(prev), filepath.Base(f))
			}
			seen[k] = f
			lines++
		}
	}
	logged := 0
	for _, l := range g.Lines() {
		if l.Msg == "action" && l.Attrs["rule"] == "every" {
			logged++
		}
		if strings.HasPrefix(l.Msg, "AUDIT LOG WRITE FAILED") || strings.HasPrefix(l.Msg, "cannot reopen the audit log") {
			t.Errorf("guardd: %s", l.Raw)
		}
	}
	if lines != logged {
		t.Errorf("%d audit lines across %d files, but guardd logged %d actions: lines were lost", lines, len(files), logged)
	}
	if withLines < 20 {
		t.Errorf("only %d of %d files have lines: the rotations did not happen while guardd wrote", withLines, len(files))
	}
	reopened := 0
	for _, l := range g.Lines() {
		if l.Msg == "audit log reopened" {
			reopened++
		}
	}
	if reopened < rotations/2 {
		t.Errorf("guardd logged %d reopens for %d SIGUSR1", reopened, rotations)
	}
	t.Logf("%d audit lines in %d files (%d with lines), %d reopens", lines, len(files), withLines, reopened)
}
