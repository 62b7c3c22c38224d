package report

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func readEvents(t *testing.T, path string) []Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	return out
}

func TestAuditLogWritesOneLinePerEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "audit.jsonl")
	a, err := OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	nice := 19
	ev := &Event{
		Time: time.Unix(1700000000, 0).UTC(), Host: "h", Rule: "cpu-hog", RuleAt: "p.hcl:3", Step: 1,
		Action: "renice", Mode: "enforce", Outcome: OutcomeDone, PID: 42, StartTime: 7, UID: 1000, User: "bob",
		Exe: "/usr/bin/x", Comm: "a)\nb", Cmdline: "x <y> & z", Nice: &nice, Values: map[string]any{"proc.cpu_percent": 99.5},
	}
	if err := a.Write(ev); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if strings.Count(string(raw), "\n") != 1 {
		t.Fatalf("want exactly one line, got %q", raw)
	}
	if strings.Contains(string(raw), `\u003c`) {
		t.Errorf("HTML escaping makes command lines unreadable: %s", raw)
	}
	for _, absent := range []string{`"reason"`, `"signal"`} {
		if strings.Contains(string(raw), absent) {
			t.Errorf("empty field %s written: %s", absent, raw)
		}
	}
	got := readEvents(t, path)[0]
	if got.Comm != ev.Comm || got.Cmdline != ev.Cmdline || *got.Nice != 19 || got.Values["proc.cpu_percent"] != 99.5 || got.UID != 1000 {
		t.Errorf("round trip: got %+v", got)
	}
	a.Close()
	if err := a.Write(ev); err == nil {
		t.Error("write after close succeeded")
	}
}

func TestAuditLogFollowsRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	a, err := OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Write(&Event{Rule: "before"})
	if err := os.Rename(path, path+".1"); err != nil { // logrotate without copytruncate
		t.Fatal(err)
	}
	a.Write(&Event{Rule: "after"})
	if got := readEvents(t, path+".1"); len(got) != 1 || got[0].Rule != "before" {
		t.Errorf("rotated file: %+v", got)
	}
	if got := readEvents(t, path); len(got) != 1 || got[0].Rule != "after" {
		t.Errorf("new file: %+v", got)
	}
}

func TestAuditLogConcurrentWritersKeepLinesWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				a.Write(&Event{Rule: "r", Cmdline: strings.Repeat("x", 300), PID: int32(g*1000 + i)})
			}
		}()
	}
	wg.Wait()
	if got := readEvents(t, path); len(got) != 1600 {
		t.Errorf("%d events, want 1600", len(got))
	}
}

// A write does not wait for an fsync in progress: while Sync hangs on a
// slow disk (a hook stands in for it), Write returns. The control: the
// Sync then returns and both lines are in the file.
func TestAuditLogWriteDoesNotWaitForSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Write(&Event{Rule: "before"}); err != nil {
		t.Fatal(err)
	}
	inSync, release := make(chan struct{}), make(chan struct{})
	a.beforeSync = func() {
		close(inSync)
		<-release
	}
	synced := make(chan error, 1)
	go func() { synced <- a.Sync() }()
	deadline := time.After(30 * time.Second)
	select {
	case <-inSync:
	case <-deadline:
		t.Fatal("Sync never reached the disk")
	}
	wrote := make(chan error, 1)
	go func() { wrote <- a.Write(&Event{Rule: "during"}) }()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-deadline:
		close(release)
		t.Fatal("Write waited for an fsync in progress")
	}
	close(release)
	select {
	case err := <-synced:
		if err != nil {
			t.Fatalf("Sync: %v", err)
		}
	case <-deadline:
		t.Fatal("Sync never returned")
	}
	evs := readEvents(t, path)
	if len(evs) != 2 || evs[0].Rule != "before" || evs[1].Rule != "during" {
		t.Errorf("audit log holds %v, want the lines before and during the fsync", evs)
	}
}
