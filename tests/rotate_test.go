//go:build linux

package tests

import (
	"fmt"
	"net/http"
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
// files: none lost, none duplicated; and the upstream forwarder, which
// reads the log back, sends each of them exactly once too.
func TestAuditRotation(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	var offenders []*Offender
	for i := range 8 {
		offenders = append(offenders, StartOffender(t, u, "sleep", fmt.Sprint("rotate-", i)))
	}
	dir := t.TempDir()
	secret := []byte("rotation secret")
	secretFile := filepath.Join(dir, "webhook-secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	col := NewCollector(t, secret)
	col.Listen(t, http.StatusOK)
	// A report of every one of the user's processes at every tick: a cheap
	// source of audit lines (no side effect) that keeps coming.
	g := StartGuarddConfig(t, Config{Dir: dir, Interval: "100ms", Body: Class(u) + `rule "every" {
  class    = "c"
  when     = proc.age_seconds >= 0
  cooldown = "0s"
  report {}
}
` + webhookReport("http://"+col.Addr+"/hook", secretFile, "")})
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
	// No more lines: then every line written is forwarded, and guardd is
	// stopped with its log and the files complete.
	for _, o := range offenders {
		o.Kill()
		WaitGone(t, o.ID, Deadline)
	}
	files = append(files, g.AuditPath)
	written := func() map[string]bool {
		m := map[string]bool{}
		for _, f := range files {
			b, _ := os.ReadFile(f)
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, `"rule":"every"`) {
					m[l] = true
				}
			}
		}
		return m
	}
	forwarded := func() map[string]map[string]bool { // audit line -> envelope ids
		m := map[string]map[string]bool{}
		for _, e := range col.Events() {
			if e.Kind == "audit" && strings.Contains(string(e.Data), `"rule":"every"`) {
				if m[string(e.Data)] == nil {
					m[string(e.Data)] = map[string]bool{}
				}
				m[string(e.Data)][e.ID] = true
			}
		}
		return m
	}
	Eventually(Deadline, func() bool {
		w, f := written(), forwarded()
		for l := range w {
			if f[l] == nil {
				return false
			}
		}
		return len(w) > 0
	})
	g.Stop(t)
	w, f := written(), forwarded()
	lost, twice := 0, 0
	for l := range w {
		if f[l] == nil {
			lost++
		}
	}
	for l, ids := range f {
		if len(ids) > 1 {
			twice++ // the same line under two ids: queued twice, not a redelivery
		}
		if !w[l] {
			t.Errorf("forwarded a line that is in no file: %s", l)
		}
	}
	if lost > 0 || twice > 0 {
		t.Errorf("upstream: %d of %d audit lines never forwarded, %d forwarded under two ids", lost, len(w), twice)
	}

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
