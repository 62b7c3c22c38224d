package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTestSpool(t *testing.T, path string, lim SpoolLimits) *Spool {
	t.Helper()
	sp, err := OpenSpool(path, lim)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func queued(t *testing.T, sp *Spool, q string) []string {
	t.Helper()
	var out []string
	if err := sp.View(func(tx *SpoolTx) error {
		return tx.Each(q, 0, func(_ uint64, v []byte) (bool, error) {
			out = append(out, string(v))
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func appendAll(t *testing.T, sp *Spool, q string, vals ...string) {
	t.Helper()
	if err := sp.Update(func(tx *SpoolTx) error {
		for _, v := range vals {
			if _, err := tx.Append(q, []byte(v)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestSpoolSurvivesReopenInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	sp := openTestSpool(t, path, SpoolLimits{})
	id := sp.ID()
	appendAll(t, sp, "webhook", "a", "b", "c")
	appendAll(t, sp, "syslog", "x")
	if err := sp.Update(func(tx *SpoolTx) error { return tx.Delete("webhook", 1) }); err != nil {
		t.Fatal(err)
	}
	sp.Close()

	sp = openTestSpool(t, path, SpoolLimits{})
	defer sp.Close()
	if sp.ID() != id {
		t.Errorf("spool id changed across reopen: %q then %q", id, sp.ID())
	}
	if got := queued(t, sp, "webhook"); strings.Join(got, ",") != "b,c" {
		t.Errorf("webhook queue after reopen = %v, want [b c]", got)
	}
	if got := queued(t, sp, "syslog"); strings.Join(got, ",") != "x" {
		t.Errorf("syslog queue = %v, want [x]", got)
	}
	appendAll(t, sp, "webhook", "d")
	var seqs []uint64
	sp.View(func(tx *SpoolTx) error {
		return tx.Each("webhook", 0, func(s uint64, _ []byte) (bool, error) { seqs = append(seqs, s); return true, nil })
	})
	if fmt.Sprint(seqs) != "[2 3 4]" {
		t.Errorf("sequence numbers %v, want [2 3 4]: never reused", seqs)
	}
	st, _ := sp.Stats()
	if st["webhook"].Records != 3 || st["webhook"].Bytes != 3 || st["webhook"].Dropped != 0 {
		t.Errorf("webhook stats %+v, want 3 records, 3 bytes, 0 dropped", st["webhook"])
	}
}

func TestSpoolDropsOldestWhenFullAndCounts(t *testing.T) {
	sp := openTestSpool(t, filepath.Join(t.TempDir(), "spool.db"), SpoolLimits{MaxRecords: 3})
	defer sp.Close()
	var mu sync.Mutex
	told := 0
	sp.OnDrop(func(q string, n int) { mu.Lock(); told += n; mu.Unlock() })
	appendAll(t, sp, "q", "1", "2", "3", "4", "5")
	if got := queued(t, sp, "q"); strings.Join(got, ",") != "3,4,5" {
		t.Errorf("queue = %v, want the newest three", got)
	}
	st, _ := sp.Stats()
	if st["q"].Dropped != 2 || st["q"].Records != 3 {
		t.Errorf("stats %+v, want 2 dropped, 3 records", st["q"])
	}
	if told != 2 {
		t.Errorf("OnDrop told %d, want 2", told)
	}

	sp.SetLimits(SpoolLimits{MaxRecords: 100, MaxBytes: 10})
	appendAll(t, sp, "b", "12345", "67890", "abc")
	if got := queued(t, sp, "b"); strings.Join(got, ",") != "67890,abc" {
		t.Errorf("byte-bounded queue = %v, want [67890 abc]", got)
	}
	// A record bigger than the bound still goes in (alone).
	appendAll(t, sp, "b", "0123456789abcdef")
	if got := queued(t, sp, "b"); len(got) != 1 || got[0] != "0123456789abcdef" {
		t.Errorf("queue after an oversized record = %v", got)
	}
	if err := sp.Update(func(tx *SpoolTx) error { return tx.Drop("b", 4) }); err != nil {
		t.Fatal(err)
	}
	st, _ = sp.Stats()
	if st["b"].Dropped != 4 || st["b"].Records != 0 || st["b"].Bytes != 0 {
		t.Errorf("stats %+v, want 4 dropped (1 + 2 for room, 1 refused), empty", st["b"])
	}
}

func TestSpoolIsLockedAgainstASecondDaemon(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	sp := openTestSpool(t, path, SpoolLimits{})
	defer sp.Close()
	_, err := OpenSpool(path, SpoolLimits{})
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Errorf("second open: %v, want a lock error", err)
	}
}

func TestSpoolWaitWakesOnAppend(t *testing.T) {
	sp := openTestSpool(t, filepath.Join(t.TempDir(), "spool.db"), SpoolLimits{})
	defer sp.Close()
	w := sp.Wait("q")
	appendAll(t, sp, "other", "x")
	select {
	case <-w:
		t.Fatal("woken by another queue")
	default:
	}
	appendAll(t, sp, "q", "x")
	select {
	case <-w:
	case <-time.After(time.Second):
		t.Fatal("not woken by an append")
	}
}

func writeLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := f.WriteString(l); err != nil {
			t.Fatal(err)
		}
	}
}

func auditLine(n int) string {
	return fmt.Sprintf(`{"time":"2026-01-02T03:04:%02dZ","host":"h","rule":"r%d","step":1,"action":"report","mode":"enforce","outcome":"done","uid":1000,"user":"u"}`+"\n", n%60, n)
}

func envelopes(t *testing.T, sp *Spool, q string) []Envelope {
	t.Helper()
	var out []Envelope
	for _, v := range queued(t, sp, q) {
		var e Envelope
		if err := json.Unmarshal([]byte(v), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func rules(t *testing.T, envs []Envelope) string {
	t.Helper()
	var out []string
	for _, e := range envs {
		var ev Event
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev.Rule)
	}
	return strings.Join(out, ",")
}

func TestAuditTailQueuesEachLineOnceAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	log, db := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "spool.db")
	writeLines(t, log, auditLine(0)) // history before the first start: not news
	sp := openTestSpool(t, db, SpoolLimits{})
	tail := NewAuditTail(log, "h", sp)
	qs := []string{"webhook", "syslog"}
	if n, err := tail.Poll(qs); err != nil || n != 0 {
		t.Fatalf("first poll: %d, %v; want 0 (starts at the end)", n, err)
	}
	writeLines(t, log, auditLine(1), auditLine(2), `{"time":"2026-01-02T03:04:05Z","rule":"par`)
	if n, err := tail.Poll(qs); err != nil || n != 2 {
		t.Fatalf("poll: %d, %v; want 2 (the partial line waits)", n, err)
	}
	writeLines(t, log, `tial"}`+"\n")
	tail.Close()
	sp.Close()

	sp = openTestSpool(t, db, SpoolLimits{})
	defer sp.Close()
	tail = NewAuditTail(log, "h", sp)
	defer tail.Close()
	if n, err := tail.Poll(qs); err != nil || n != 1 {
		t.Fatalf("poll after restart: %d, %v; want 1", n, err)
	}
	for _, q := range qs {
		envs := envelopes(t, sp, q)
		if got := rules(t, envs); got != "r1,r2,partial" {
			t.Errorf("%s: rules %q, want r1,r2,partial", q, got)
		}
		ids := map[string]bool{}
		for _, e := range envs {
			if e.Kind != KindAudit || e.Host != "h" || !strings.HasPrefix(e.ID, sp.ID()+"-") || e.Time.IsZero() {
				t.Errorf("%s: bad envelope %+v", q, e)
			}
			ids[e.ID] = true
		}
		if len(ids) != 3 {
			t.Errorf("%s: %d distinct ids for 3 events", q, len(ids))
		}
	}
	if a, b := envelopes(t, sp, "webhook"), envelopes(t, sp, "syslog"); a[0].ID != b[0].ID {
		t.Errorf("one event has ids %s and %s in two queues, want one id", a[0].ID, b[0].ID)
	}
}

func TestAuditTailFollowsRotation(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.jsonl")
	writeLines(t, log, "")
	sp := openTestSpool(t, filepath.Join(dir, "spool.db"), SpoolLimits{})
	defer sp.Close()
	tail := NewAuditTail(log, "h", sp)
	defer tail.Close()
	qs := []string{"q"}
	tail.Poll(qs)
	writeLines(t, log, auditLine(1))
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	writeLines(t, log+".1", auditLine(2)) // a write in flight lands in the old file
	writeLines(t, log, auditLine(3))
	if _, err := tail.Poll(qs); err != nil {
		t.Fatal(err)
	}
	writeLines(t, log, auditLine(4))
	tail.Poll(qs)
	if got := rules(t, envelopes(t, sp, "q")); got != "r1,r2,r3,r4" {
		t.Errorf("rules %q, want r1,r2,r3,r4", got)
	}

	// Rotated while stopped: the rest of the old file is found as .1.
	tail.Close()
	writeLines(t, log, auditLine(5))
	os.Rename(log, log+".1")
	writeLines(t, log, auditLine(6))
	tail2 := NewAuditTail(log, "h", sp)
	defer tail2.Close()
	tail2.Poll(qs)
	if got := rules(t, envelopes(t, sp, "q")); got != "r1,r2,r3,r4,r5,r6" {
		t.Errorf("after a rotation while stopped: rules %q, want r1..r6", got)
	}
}

func TestAuditTailCountsUnreadableLines(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.jsonl")
	writeLines(t, log, "")
	sp := openTestSpool(t, filepath.Join(dir, "spool.db"), SpoolLimits{})
	defer sp.Close()
	tail := NewAuditTail(log, "h", sp)
	defer tail.Close()
	var warned []string
	tail.Warnf = func(f string, a ...any) { warned = append(warned, fmt.Sprintf(f, a...)) }
	tail.Poll([]string{"q"})
	writeLines(t, log, "not json\n", auditLine(1), "\n", strings.Repeat("x", maxAuditLine+10)+"\n")
	n, err := tail.Poll([]string{"q"})
	if err != nil || n != 1 {
		t.Fatalf("poll = %d, %v; want 1", n, err)
	}
	st, _ := sp.Stats()
	if st[DroppedAuditQueue].Dropped != 2 {
		t.Errorf("unreadable lines counted %d, want 2", st[DroppedAuditQueue].Dropped)
	}
	if len(warned) == 0 {
		t.Error("no warning about unreadable lines")
	}
}

// flakySink fails the first fails sends, then takes everything.
type flakySink struct {
	mu        sync.Mutex
	fails     int
	permanent bool
	got       []string
	calls     int
}

func (s *flakySink) Send(_ context.Context, batch [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fails > 0 {
		s.fails--
		if s.permanent {
			return Permanent(errors.New("refused"))
		}
		return errors.New("down")
	}
	for _, b := range batch {
		s.got = append(s.got, string(b))
	}
	return nil
}

func (s *flakySink) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func runDispatcher(t *testing.T, sp *Spool, sink Sink, refusals int) (*DeliveryStats, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st := &DeliveryStats{}
	d := &Dispatcher{Spool: sp, Queue: "q", Sink: sink, Batch: 2, Backoff: Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}, MaxRefusals: refusals, Stats: st}
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	return st, func() { cancel(); <-done }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDispatcherRetriesUntilDeliveredInOrder(t *testing.T) {
	sp := openTestSpool(t, filepath.Join(t.TempDir(), "spool.db"), SpoolLimits{})
	defer sp.Close()
	sink := &flakySink{fails: 4}
	st, stop := runDispatcher(t, sp, sink, 0)
	defer stop()
	appendAll(t, sp, "q", "1", "2", "3")
	waitFor(t, "three delivered", func() bool { return len(sink.received()) == 3 })
	appendAll(t, sp, "q", "4")
	waitFor(t, "the fourth", func() bool { return len(sink.received()) == 4 })
	if got := strings.Join(sink.received(), ","); got != "1,2,3,4" {
		t.Errorf("delivered %s, want 1,2,3,4", got)
	}
	waitFor(t, "the queue to drain", func() bool { return len(queued(t, sp, "q")) == 0 })
	// The counters follow the spool's delete: wait for the last batch's.
	waitFor(t, "four delivered in the stats", func() bool { return st.Delivered.Load() >= 4 })
	if st.Delivered.Load() != 4 || st.Failures.Load() != 4 || st.Dropped.Load() != 0 {
		t.Errorf("stats delivered %d failures %d dropped %d, want 4 4 0", st.Delivered.Load(), st.Failures.Load(), st.Dropped.Load())
	}
}

func TestDispatcherDropsPermanentRefusalsAfterBoundedAttempts(t *testing.T) {
	sp := openTestSpool(t, filepath.Join(t.TempDir(), "spool.db"), SpoolLimits{})
	defer sp.Close()
	sink := &flakySink{fails: 3, permanent: true}
	appendAll(t, sp, "q", "1", "2", "3")
	st, stop := runDispatcher(t, sp, sink, 3)
	defer stop()
	waitFor(t, "the rest delivered", func() bool { return len(sink.received()) == 1 })
	if got := sink.received(); got[0] != "3" {
		t.Errorf("delivered %v, want [3] (the refused batch 1,2 dropped)", got)
	}
	if st.Dropped.Load() != 2 {
		t.Errorf("dropped %d, want 2", st.Dropped.Load())
	}
	stats, _ := sp.Stats()
	if stats["q"].Dropped != 2 {
		t.Errorf("spool drop counter %d, want 2", stats["q"].Dropped)
	}
}

func TestBackoffGrowsWithJitterWithinBounds(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		for range 100 {
			if d := b.Delay(attempt); d < want/2 || d > want {
				t.Fatalf("attempt %d: delay %s outside [%s, %s]", attempt, d, want/2, want)
			}
		}
	}
}

// TestAppendEnvelopeMatchesEncodingJSON: the hand-written envelope is
// byte for byte what json.Marshal makes of the same Envelope, for data as
// encoding/json writes it (the audit log's lines and the summaries).
func TestAppendEnvelopeMatchesEncodingJSON(t *testing.T) {
	data, err := json.Marshal(map[string]any{"time": "2026-11-25T13:23:09.590517919Z", "rule": "zombies",
		"values": map[string]float64{"proc.zombie_children": 6}, "note": "<&>\u2028 \"q\" ホスト"})
	if err != nil {
		t.Fatal(err)
	}
	tokyo := time.FixedZone("JST", 9*3600)
	for _, host := range []string{"web01", "ホスト-1", `q"uo\te`, "<b>&amp;</b>", "tab\there\nnl\x01\x1f", "bad\xffutf8", "ls\u2028ps\u2029", ""} {
		for _, at := range []time.Time{
			time.Date(2026, 11, 25, 13, 23, 9, 590517919, time.UTC),
			time.Date(2026, 11, 25, 13, 23, 9, 0, tokyo),
			time.Date(1999, 1, 2, 3, 4, 5, 100, time.UTC),
		} {
			got, err := appendEnvelope(nil, "0a1b2c", 42, KindAudit, host, at, data)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(Envelope{ID: "0a1b2c-42", Kind: KindAudit, Host: host, Time: at, Data: data})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("host %q at %s:\n got %s\nwant %s", host, at, got, want)
			}
		}
	}
	if _, err := appendEnvelope(nil, "x", 1, KindAudit, "h", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), data); err == nil {
		t.Error("a year past 9999 was accepted (encoding/json refuses it)")
	}
}

// TestAuditLineTime: the fast path takes the audit writer's lines; other
// valid objects take the slow one; loose or broken JSON is refused (the
// tail compacts loose JSON first).
func TestAuditLineTime(t *testing.T) {
	at := time.Date(2026, 11, 25, 13, 23, 9, 590517919, time.UTC)
	for _, c := range []struct {
		line string
		ok   bool
	}{
		{`{"time":"2026-11-25T13:23:09.590517919Z","rule":"r","x":"a b"}`, true},
		{`{"rule":"r","time":"2026-11-25T13:23:09.590517919Z"}`, true},
		{`{"time":"2026-11-25T13:23:09.590517919Z", "rule":"r"}`, false},
		{`{"time":"2026-11-25T13:23:09.590517919Z","rule":"r"`, false},
		{`{"time":"2026-11-25T13:23:09.590517919Z","rule":"r"}x`, false},
		{`not json`, false},
	} {
		got, ok := auditLineTime([]byte(c.line))
		if ok != c.ok || (ok && !got.Equal(at)) {
			t.Errorf("%s: got %s %v, want ok=%v", c.line, got, ok, c.ok)
		}
	}
}
