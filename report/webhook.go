package report

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Webhook headers.
const (
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the
	// request body exactly as sent (the gzip bytes when gzipped), keyed
	// with the shared secret: verify it before decompressing.
	SignatureHeader = "X-Guardd-Signature"
	// BatchHeader is the id of the batch's first event: a retried batch
	// starts with the same id.
	BatchHeader = "X-Guardd-Batch"
)

// WebhookBatch is the JSON body of one webhook request.
type WebhookBatch struct {
	Host   string            `json:"host"`
	Sent   time.Time         `json:"sent"`
	Events []json.RawMessage `json:"events"` // Envelopes: each has its idempotency id
}

// WebhookSink posts batches of envelopes as JSON.
type WebhookSink struct {
	URL       string
	Secret    []byte // HMAC key; nil: no signature header
	Gzip      bool
	Host      string
	UserAgent string
	Client    *http.Client
}

// Send posts one batch. 2xx is success; 408, 429 and 5xx (and any network
// error) are worth retrying; other statuses mean the collector refuses the
// batch for good.
func (w *WebhookSink) Send(ctx context.Context, batch [][]byte) error {
	body := w.encode(batch, time.Now())
	if w.Gzip {
		var zb bytes.Buffer
		zw := gzipWriters.Get().(*gzip.Writer) // a new one allocates and clears ~1 MiB of tables
		zw.Reset(&zb)
		zw.Write(body)
		zw.Close()
		gzipWriters.Put(zw)
		body = zb.Bytes()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if w.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if w.UserAgent != "" {
		req.Header.Set("User-Agent", w.UserAgent)
	}
	if len(w.Secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(w.Secret, body))
	}
	var first struct {
		ID string `json:"id"`
	}
	if len(batch) > 0 && json.Unmarshal(batch[0], &first) == nil {
		req.Header.Set(BatchHeader, first.ID)
	}
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("webhook: %s: %s", resp.Status, bytes.TrimSpace(msg))
	default:
		return Permanent(fmt.Errorf("webhook: %s: %s", resp.Status, bytes.TrimSpace(msg)))
	}
}

// encode builds the JSON body around the queued envelopes, without
// decoding them.
func (w *WebhookSink) encode(batch [][]byte, now time.Time) []byte {
	var b bytes.Buffer
	host, _ := json.Marshal(w.Host)
	sent, _ := json.Marshal(now.UTC())
	b.WriteString(`{"host":`)
	b.Write(host)
	b.WriteString(`,"sent":`)
	b.Write(sent)
	b.WriteString(`,"events":[`)
	for i, e := range batch {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e)
	}
	b.WriteString("]}")
	return b.Bytes()
}

var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

// Sign returns the signature header value of body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a signature header against body, in constant
// time: what a receiver does before it trusts a batch.
func VerifySignature(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}
