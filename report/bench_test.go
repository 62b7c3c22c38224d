package report

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSpoolToWebhook measures events per second from the audit log
// through the spool to a webhook receiver on loopback: the tail reads
// audit lines and queues them (bbolt, fsynced), the dispatcher posts
// signed gzip batches and deletes what was taken. The peer figure is the
// same receiver fed the same batches directly, without the spool: the
// ratio is what durability costs.
func BenchmarkSpoolToWebhook(b *testing.B) {
	const events = 20_000
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// What a receiver does: verify, then count the events.
		if !VerifySignature([]byte("k"), body, r.Header.Get(SignatureHeader)) {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var batch WebhookBatch
		if err := json.NewDecoder(zr).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got.Add(int64(len(batch.Events)))
	}))
	defer srv.Close()
	line := []byte(`{"time":"2026-01-02T03:04:05.123456789Z","host":"web17","rule":"cpu-hog","rule_at":"/etc/guardd/policy.hcl:38","step":1,"action":"renice","mode":"enforce","outcome":"done","pid":27970,"starttime":96998,"uid":1001,"user":"alice","exe":"/usr/bin/php8.2","comm":"php","cmdline":"php rebuild-index.php","nice":19,"values":{"proc.cpu_percent":100.08}}` + "\n")
	newSink := func() *WebhookSink {
		return &WebhookSink{URL: srv.URL, Secret: []byte("k"), Gzip: true, Host: "web17", Client: srv.Client()}
	}

	var ours, peer time.Duration
	for b.Loop() {
		// Ours: audit log -> tail -> spool -> dispatcher -> webhook.
		dir := b.TempDir()
		audit := filepath.Join(dir, "audit.jsonl")
		os.WriteFile(audit, nil, 0o600)
		sp, err := OpenSpool(filepath.Join(dir, "spool.db"), SpoolLimits{})
		if err != nil {
			b.Fatal(err)
		}
		tail := NewAuditTail(audit, "web17", sp)
		tail.Poll([]string{"webhook"})
		ctx, cancel := context.WithCancel(context.Background())
		d := &Dispatcher{Spool: sp, Queue: "webhook", Sink: newSink(), Batch: 500, Backoff: Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}}
		done := make(chan struct{})
		go func() { d.Run(ctx); close(done) }()
		got.Store(0)
		f, _ := os.OpenFile(audit, os.O_WRONLY|os.O_APPEND, 0)
		start := time.Now()
		// The daemon writes lines as it acts and the tail wakes on them:
		// lines arrive in bursts of 1,000, as from a tick acting 1,000 times.
		for i := 0; i < events; i += 1000 {
			f.Write(bytes.Repeat(line, 1000))
			if _, err := tail.Poll([]string{"webhook"}); err != nil {
				b.Fatal(err)
			}
		}
		for got.Load() < events {
			time.Sleep(time.Millisecond)
		}
		ours += time.Since(start)
		cancel()
		<-done
		f.Close()
		tail.Close()
		sp.Close()

		// Peer: the same batches posted straight from memory.
		var env [][]byte
		for i := range events {
			e, _ := json.Marshal(Envelope{ID: fmt.Sprintf("x-%d", i), Kind: KindAudit, Host: "web17", Time: time.Now(), Data: bytes.TrimSpace(line)})
			env = append(env, e)
		}
		got.Store(0)
		sink := newSink()
		start = time.Now()
		for i := 0; i < events; i += 500 {
			if err := sink.Send(context.Background(), env[i:min(i+500, events)]); err != nil {
				b.Fatal(err)
			}
		}
		peer += time.Since(start)
	}
	n := float64(b.N) * events
	b.ReportMetric(n/ours.Seconds(), "events/s")
	b.ReportMetric(n/peer.Seconds(), "direct-events/s")
	b.ReportMetric(ours.Seconds()/peer.Seconds(), "spooled/direct")
}

// BenchmarkAuditLineToEnvelope: what the tail does with each audit line
// before the spool (read its time, check it, wrap it in an envelope),
// beside the same done with encoding/json (Unmarshal of the time, Marshal
// of an Envelope with the line as a RawMessage), which it replaced:
//
//	go test -run '^$' -bench AuditLineToEnvelope ./report/
func BenchmarkAuditLineToEnvelope(b *testing.B) {
	line, err := json.Marshal(Event{Time: time.Date(2026, 11, 25, 13, 23, 9, 590517919, time.UTC), Host: "web01", Rule: "cpu-hog",
		RuleAt: "/etc/guardd/policy.hcl:38", Step: 1, Action: "renice", Mode: "enforce", Outcome: "done",
		Reason: "cpu 97.2% for 5m0s (limit: proc.cpu_percent > 80)", PID: 123456, StartTime: 98765432, UID: 1042,
		User: "customer42", Exe: "/usr/bin/php-cgi", Comm: "php-cgi", Cmdline: "/usr/bin/php-cgi -c /home/customer42/php.ini index.php",
		Values: map[string]any{"proc.cpu_percent": 97.2}})
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	ours := func() {
		at, ok := auditLineTime(line)
		if !ok {
			b.Fatal("line refused")
		}
		if buf, err = appendEnvelope(buf[:0], "0a1b2c3d", 42, KindAudit, "web01", at, line); err != nil {
			b.Fatal(err)
		}
	}
	peer := func() {
		var head struct {
			Time time.Time `json:"time"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(Envelope{ID: "0a1b2c3d-42", Kind: KindAudit, Host: "web01", Time: head.Time, Data: line}); err != nil {
			b.Fatal(err)
		}
	}
	const peerRuns = 20000
	start := time.Now()
	for range peerRuns {
		peer()
	}
	peerNs := float64(time.Since(start).Nanoseconds()) / peerRuns
	b.ResetTimer()
	for b.Loop() {
		ours()
	}
	oursNs := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(float64(len(line)), "line-bytes")
	b.ReportMetric(peerNs, "encoding-json-ns/line")
	b.ReportMetric(peerNs/oursNs, "x-faster")
}
