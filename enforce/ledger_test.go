package enforce

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// steps runs the ledger over a script of ticks: held[i] says whether the
// condition holds at second i; it returns "second:step" for each due step.
func steps(t *testing.T, l *Ledger, tm *Timing, held []bool) []string {
	t.Helper()
	k := Key{Rule: "r", PID: 10, StartTime: 5, UID: 1000}
	timing := func(string) *Timing { return tm }
	var out []string
	for i, h := range held {
		var hs []Held
		if h {
			hs = []Held{{Key: k, Timing: tm}}
		}
		for _, d := range l.Advance(at(i), hs, timing) {
			out = append(out, time.Duration(i*int(time.Second)).String()+":"+string(rune('1'+d.Step)))
		}
	}
	return out
}

func TestLedgerEscalation(t *testing.T) {
	tm := &Timing{For: 3 * time.Second, Cooldown: 5 * time.Second, After: []time.Duration{0, 4 * time.Second}}
	cases := []struct {
		name string
		held string // one char per second: x holds, . does not
		want []string
	}{
		{"never holds", "..........", nil},
		{"holds briefly, less than for", "xx.xx.xx..", nil},
		{"step one after for, step two after its delay", "xxxxxxxxxx", []string{"3s:1", "7s:2"}},
		{"stops holding between steps: starts over", "xxxx.xxxxxxxx", []string{"3s:1", "8s:1", "12s:2"}},
		{"cooldown after the last step, then starts over", "xxxxxxxxxxxxxxxxxxxx", []string{"3s:1", "7s:2", "15s:1", "19s:2"}},
		{"cooldown is kept while not holding", "xxxxxxxx...xxxxxxxx", []string{"3s:1", "7s:2", "15s:1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var held []bool
			for _, ch := range c.held {
				held = append(held, ch == 'x')
			}
			got := steps(t, NewLedger(), tm, held)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestLedgerSameDelayStepsRunTogether(t *testing.T) {
	tm := &Timing{For: 0, Cooldown: time.Hour, After: []time.Duration{0, 0, 2 * time.Second}}
	got := steps(t, NewLedger(), tm, []bool{true, true, true, true})
	want := []string{"0s:1", "0s:2", "2s:3"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestLedgerDropsRemovedRules(t *testing.T) {
	l := NewLedger()
	tm := &Timing{Cooldown: time.Hour, After: []time.Duration{0}}
	k := Key{Rule: "gone", UID: 1000}
	l.Advance(at(0), []Held{{Key: k, Timing: tm}}, func(string) *Timing { return tm })
	if l.Len() != 1 {
		t.Fatalf("len %d, want 1 (cooling down)", l.Len())
	}
	l.Advance(at(1), nil, func(string) *Timing { return nil })
	if l.Len() != 0 {
		t.Fatalf("len %d after the rule disappeared, want 0", l.Len())
	}
}

func TestLedgerForget(t *testing.T) {
	l := NewLedger()
	tm := &Timing{Cooldown: time.Hour, After: []time.Duration{0}}
	alive := Key{Rule: "r", PID: 1, StartTime: 1, UID: 1000}
	dead := Key{Rule: "r", PID: 2, StartTime: 1, UID: 1000}
	user := Key{Rule: "u", UID: 1000}
	l.Advance(at(0), []Held{{alive, tm}, {dead, tm}, {user, tm}}, func(string) *Timing { return tm })
	l.Forget(func(pid int32, start uint64) bool { return pid == 1 })
	if _, ok := l.Since(dead); ok {
		t.Error("dead process still in the ledger")
	}
	if _, ok := l.Since(alive); !ok {
		t.Error("live process forgotten")
	}
	if _, ok := l.Since(user); !ok {
		t.Error("user escalation forgotten")
	}
}

func TestLedgerSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "ledger.json")
	tm := &Timing{For: time.Second, Cooldown: time.Hour, After: []time.Duration{0, 10 * time.Second}}
	proc := Key{Rule: "r", PID: 7, StartTime: 99, UID: 1000}
	user := Key{Rule: "u", UID: 1001}
	timing := func(string) *Timing { return tm }
	l := NewLedger()
	l.Advance(at(0), []Held{{proc, tm}, {user, tm}}, timing)
	l.Advance(at(1), []Held{{proc, tm}, {user, tm}}, timing) // step 1 of both
	if !l.Dirty() {
		t.Fatal("not dirty after changes")
	}
	if err := l.Save(path, "boot-a", at(1), true); err != nil {
		t.Fatal(err)
	}
	if l.Dirty() {
		t.Error("dirty after save")
	}

	same, err := LoadLedger(path, "boot-a")
	if err != nil {
		t.Fatal(err)
	}
	// Restored: step 2 comes 10s after step 1, not after a new `for`.
	due := same.Advance(at(11), []Held{{proc, tm}}, timing)
	if len(due) != 1 || due[0].Step != 1 || due[0].Key != proc {
		t.Errorf("after restore: due %v, want step 2 of %v", due, proc)
	}

	other, err := LoadLedger(path, "boot-b")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := other.Since(proc); ok {
		t.Error("process escalation survived a reboot")
	}
	if _, ok := other.Since(user); !ok {
		t.Error("user escalation lost across a reboot")
	}

	missing, err := LoadLedger(filepath.Join(t.TempDir(), "none.json"), "boot-a")
	if err != nil || missing.Len() != 0 {
		t.Errorf("missing file: %v, len %d", err, missing.Len())
	}
}

// A step that did nothing (Undone) starts no cooldown and is not saved as
// run: the kill_user that failed for want of capabilities must not leave
// the user alone for the rule's cooldown (issue 11, item 6).
func TestLedgerUndoneStepIsRetriedNotCooledDown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.json")
	tm := &Timing{Cooldown: time.Hour, After: []time.Duration{0}}
	k := Key{Rule: "storm", UID: 1000}
	timing := func(string) *Timing { return tm }
	held := []Held{{k, tm}}
	l := NewLedger()
	due := l.Advance(at(0), held, timing)
	if len(due) != 1 {
		t.Fatalf("due %v, want step 1", due)
	}
	l.Undone(k, 0, at(0), 5*time.Second)
	if err := l.Save(path, "boot", at(0), true); err != nil {
		t.Fatal(err)
	}
	l, err := LoadLedger(path, "boot") // what a restart after fixing the unit sees
	if err != nil {
		t.Fatal(err)
	}
	for s := 1; s < 5; s++ {
		if due := l.Advance(at(s), held, timing); len(due) != 0 {
			t.Fatalf("at %ds: due %v within the retry delay", s, due)
		}
	}
	due = l.Advance(at(5), held, timing)
	if len(due) != 1 || due[0].Step != 0 {
		t.Fatalf("at 5s: due %v, want step 1 again (the failed one did not count)", due)
	}
	// This time it worked: now the cooldown holds.
	if due := l.Advance(at(6), held, timing); len(due) != 0 {
		t.Fatalf("at 6s: due %v during the cooldown", due)
	}

	// Control: without Undone the cooldown starts from the step.
	c := NewLedger()
	c.Advance(at(0), held, timing)
	if due := c.Advance(at(5), held, timing); len(due) != 0 {
		t.Fatalf("control: due %v during the cooldown", due)
	}
}

// A later step that did nothing leaves the earlier ones done and keeps
// its own delay since step one.
func TestLedgerUndoneLaterStep(t *testing.T) {
	tm := &Timing{Cooldown: time.Hour, After: []time.Duration{0, 10 * time.Second}}
	k := Key{Rule: "r", PID: 1, StartTime: 1, UID: 1000}
	timing := func(string) *Timing { return tm }
	held := []Held{{k, tm}}
	l := NewLedger()
	var got []string
	for s := 0; s <= 30; s++ {
		for _, d := range l.Advance(at(s), held, timing) {
			got = append(got, time.Duration(s*int(time.Second)).String()+":"+string(rune('1'+d.Step)))
			if d.Step == 1 && s < 20 {
				l.Undone(k, d.Step, at(s), 5*time.Second)
			}
		}
	}
	want := []string{"0s:1", "10s:2", "15s:2", "20s:2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// A snapshot is the ledger as it was: changes after it neither reach the
// file nor are lost (the ledger is dirty again), and the file is sorted
// the same whatever the map's order.
func TestLedgerSnapshot(t *testing.T) {
	dir := t.TempDir()
	tm := &Timing{Cooldown: time.Hour, After: []time.Duration{0}}
	timing := func(string) *Timing { return tm }
	a := Key{Rule: "r", PID: 7, StartTime: 99, UID: 1000}
	b := Key{Rule: "r", UID: 1000}
	c := Key{Rule: "q", UID: 1001}
	l := NewLedger()
	l.Advance(at(0), []Held{{a, tm}, {b, tm}}, timing)
	s := l.Snapshot("boot", at(0))
	if l.Dirty() {
		t.Fatal("dirty right after a snapshot")
	}
	l.Advance(at(1), []Held{{a, tm}, {b, tm}, {c, tm}}, timing)
	if !l.Dirty() {
		t.Fatal("a change after the snapshot left the ledger clean")
	}
	path := filepath.Join(dir, "ledger.json")
	if err := s.Write(path, true); err != nil {
		t.Fatal(err)
	}
	got, err := LoadLedger(path, "boot")
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != 2 {
		t.Fatalf("snapshot wrote %d entries, want the 2 it was taken with", got.Len())
	}
	if _, ok := got.Since(c); ok {
		t.Error("an entry added after the snapshot was written with it")
	}
	var want []byte
	for i := range 20 { // map order varies: the bytes must not
		p := filepath.Join(dir, "again.json")
		if err := l.Save(p, "boot", at(1), false); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		if i == 0 {
			want = b
		} else if string(b) != string(want) {
			t.Fatal("two saves of one ledger differ")
		}
	}
	if !strings.Contains(string(want), `"rule":"q"`) || strings.Index(string(want), `"rule":"q"`) > strings.Index(string(want), `"rule":"r"`) {
		t.Errorf("entries not sorted by rule: %s", want)
	}
}
