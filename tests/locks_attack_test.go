//go:build linux

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/report"
)

// The default policy's lock ladder, taken from `guardd default-policy`
// with seconds for minutes: the holder of another uid's file (or of a lock
// other uids wait on) is ended first; an idle holder its own processes
// wait on is reported; a waiter is ended only when its wait outlasts both.
const (
	squatForeignLimit = 2
	squatOthersLimit  = 4
	squatWaiterLimit  = 10
)

// defaultLockRules returns the embedded default policy's lock rules for
// class "c", with the test's limits.
func defaultLockRules(t testing.TB) string {
	t.Helper()
	out, _, code := RunGuardd(t, "default-policy")
	if code != 0 {
		t.Fatal("guardd default-policy failed")
	}
	var keep []string
	for _, block := range []string{`rule "lock-squatter"`, `rule "lock-waiter"`, `rule "lock-holder"`} {
		i := strings.Index(out, block)
		if i < 0 {
			t.Fatalf("the default policy has no %s", block)
		}
		end := strings.Index(out[i:], "\n}\n")
		keep = append(keep, out[i:i+end+3])
	}
	text := strings.ReplaceAll(strings.Join(keep, "\n"), `"customers"`, `"c"`)
	for _, r := range [][2]string{
		{"proc.lock_foreign_seconds > 60", fmt.Sprintf("proc.lock_foreign_seconds > %d", squatForeignLimit)},
		{"proc.lock_blocking_others_seconds > 300", fmt.Sprintf("proc.lock_blocking_others_seconds > %d", squatOthersLimit)},
		{"proc.lock_wait_seconds > 600", fmt.Sprintf("proc.lock_wait_seconds > %d", squatWaiterLimit)},
		{"proc.lock_blocking_seconds > 300", "proc.lock_blocking_seconds > 2"},
	} {
		if !strings.Contains(text, r[0]) {
			t.Fatalf("the default lock rules no longer read %q:\n%s", r[0], text)
		}
		text = strings.ReplaceAll(text, r[0], r[1])
	}
	return text
}

// TestLockSquatterIsKilledNotItsVictim: an attacker locks a victim's lock
// file against it — flock(LOCK_EX) or a POSIX read lock through a
// read-only descriptor on the victim's 0644 file, or a lock file the
// attacker created first where the victim's job looks for it — while a
// process of the victim waits. The attacker is killed, the victim gets the
// lock and is never acted on.
func TestLockSquatterIsKilledNotItsVictim(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, kind  string
		attackerOwn bool // the attacker created the file (proc.lock_blocking_others)
		limit       float64
		value       string
	}{
		{"flock-victims-file", "flock", false, squatForeignLimit, "proc.lock_foreign_seconds"},
		{"posix-read-lock-victims-file", "posix", false, squatForeignLimit, "proc.lock_foreign_seconds"},
		{"flock-file-made-first", "flock", true, squatOthersLimit, "proc.lock_blocking_others_seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			attacker, victim := NewUser(t), NewUser(t)
			file := filepath.Join(SharedDir(t), "app.lock")
			owner := victim
			if tc.attackerOwn {
				owner = attacker
			}
			if err := os.WriteFile(file, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(file, int(owner.UID), int(owner.GID)); err != nil {
				t.Fatal(err)
			}
			if tc.attackerOwn {
				os.Chmod(file, 0o666) // the victim's job opens it read-write
			}
			g := StartGuardd(t, Class(attacker, victim)+defaultLockRules(t))
			holder := StartOffender(t, attacker, "lock-hold-ro", "-kind", tc.kind, file)
			waitFrom := time.Now()
			waiter := StartOffender(t, victim, "lock-wait", "-kind", tc.kind, file)

			kill := g.WaitAudit(t, Action("lock-squatter", "kill", "done", holder.PID), Deadline)
			if d := kill.Time.Sub(waitFrom); d < time.Duration(tc.limit)*time.Second {
				t.Errorf("the holder was killed %s after the victim began to wait, before the %gs limit", d, tc.limit)
			}
			if v, ok := kill.Values[tc.value].(float64); !ok || v <= tc.limit {
				t.Errorf("kill evidence %s = %v, want > %g", tc.value, kill.Values[tc.value], tc.limit)
			}
			i := slices.IndexFunc(kill.Locks, func(l report.LockEvidence) bool { return l.Role == "holds" })
			if i < 0 {
				t.Fatalf("kill evidence: locks %+v, want the one the attacker holds", kill.Locks)
			}
			l := kill.Locks[i]
			if l.Path != file || !slices.Contains(l.Waiters, int32(waiter.PID)) || l.FileUID == nil || *l.FileUID != owner.UID {
				t.Errorf("kill evidence lock %+v (file uid %v), want held on %s, owned by %d, waited on by %d", l, l.FileUID, file, owner.UID, waiter.PID)
			}
			WaitGone(t, holder.ID, Deadline)
			waiter.WaitOutput(t, "locked", Deadline)
			if !Alive(waiter.ID) {
				t.Error("the victim is gone")
			}
			for _, ev := range g.Audit(t) {
				if int(ev.PID) == waiter.PID && ev.Action == "kill" {
					t.Errorf("the victim was acted on: %+v", ev)
				}
			}
		})
	}
}

// TestLockOwnHolderKeepsTheLadder: the control. A customer's own lock,
// held by one of its processes with another of its processes waiting, is
// no attack: the holder is reported and stays, the waiter is killed once
// its wait outlasts the waiter limit, and lock-squatter never fires.
func TestLockOwnHolderKeepsTheLadder(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	file := filepath.Join(SharedDir(t), "own.lock")
	g := StartGuardd(t, Class(u)+defaultLockRules(t))
	holder := StartOffender(t, u, "lock-hold", "-kind", "flock", file)
	waitFrom := time.Now()
	waiter := StartOffender(t, u, "lock-wait", "-kind", "flock", file)

	g.WaitAudit(t, Action("lock-holder", "report", "done", holder.PID), Deadline)
	kill := g.WaitAudit(t, Action("lock-waiter", "kill", "done", waiter.PID), Deadline)
	if d := kill.Time.Sub(waitFrom); d < squatWaiterLimit*time.Second {
		t.Errorf("the waiter was killed %s after it began to wait, before the %ds limit", d, squatWaiterLimit)
	}
	WaitGone(t, waiter.ID, Deadline)
	if !Alive(holder.ID) {
		t.Error("the holder of its own lock is gone")
	}
	for _, ev := range g.Audit(t) {
		if ev.Rule == "lock-squatter" {
			t.Errorf("lock-squatter acted on a customer's own lock: %+v", ev)
		}
	}
}
