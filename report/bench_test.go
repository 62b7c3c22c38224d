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
