//go:build linux

package tests

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guardd/guardd/report"
)

// Collector is a webhook receiver on loopback: it verifies each request's
// signature, keeps every event, and answers as told (it can also be down:
// not listening at all).
type Collector struct {
	Addr   string
	secret []byte
	srv    *http.Server

	mu       sync.Mutex
	status   int
	requests int
	badSig   int
	events   []report.Envelope
	got      chan struct{} // closed and replaced on every request
}

// NewCollector reserves a loopback address; nothing listens there until
// Listen.
func NewCollector(t testing.TB, secret []byte) *Collector {
	t.Helper()
	return &Collector{Addr: FreeAddr(t), secret: secret, status: http.StatusOK, got: make(chan struct{})}
}

// Listen starts answering with status.
func (c *Collector) Listen(t testing.TB, status int) {
	t.Helper()
	c.SetStatus(status)
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c.srv = &http.Server{Handler: c}
	go c.srv.Serve(ln)
	t.Cleanup(func() { c.srv.Close() })
}

// SetStatus changes the answer.
func (c *Collector) SetStatus(status int) {
	c.mu.Lock()
	c.status = status
	c.mu.Unlock()
}

func (c *Collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ok := report.VerifySignature(c.secret, body, r.Header.Get(report.SignatureHeader))
	var batch report.WebhookBatch
	if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
		plain, _ := io.ReadAll(zr)
		json.Unmarshal(plain, &batch)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	if !ok || r.Header.Get("Content-Encoding") != "gzip" {
		c.badSig++
	}
	close(c.got)
	c.got = make(chan struct{})
	if c.status != http.StatusOK {
		http.Error(w, "collector is having a bad day", c.status)
		return
	}
	for _, raw := range batch.Events {
		var env report.Envelope
		json.Unmarshal(raw, &env)
		c.events = append(c.events, env)
	}
	w.WriteHeader(http.StatusOK)
}

// Requests returns how many requests arrived, and how many of them had a
// bad signature.
func (c *Collector) Requests() (n, bad int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests, c.badSig
}

// Events returns the events taken so far.
func (c *Collector) Events() []report.Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]report.Envelope(nil), c.events...)
}

// WaitRequests waits for at least n requests.
func (c *Collector) WaitRequests(t testing.TB, n int, deadline time.Duration) {
	t.Helper()
	if !Eventually(deadline, func() bool { got, _ := c.Requests(); return got >= n }) {
		got, _ := c.Requests()
		t.Fatalf("%d webhook requests after %s, want %d", got, deadline, n)
	}
}

// auditLines returns the audit log's lines, as written.
func auditLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func webhookReport(url, secretFile, extra string) string {
	return fmt.Sprintf(`report {
  webhook {
    url         = %q
    secret_file = %q
    batch       = 20
    retry_min   = "100ms"
    retry_max   = "500ms"
    timeout     = "5s"
  }
  summary {
    interval = "1s"
  }
%s}
`, url, secretFile, extra)
}

func TestWebhookDeliversEverythingThroughOutageAndRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := []byte("fleet shared secret\n")
	secretFile := filepath.Join(dir, "webhook-secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	col := NewCollector(t, bytes.TrimRight(secret, "\n"))
	u := NewUser(t)
	var offenders []*Offender
	for range 3 {
		offenders = append(offenders, StartOffender(t, u, "sleep", "webhook-marker"))
	}
	body := Class(u) + `rule "chatty" {
  class    = "c"
  when     = strcontains(proc.cmdline, "webhook-marker")
  cooldown = "500ms"
  report {}
}
` + webhookReport("http://"+col.Addr+"/hook", secretFile, "")
	g := StartGuarddConfig(t, Config{Dir: dir, Body: body})

	// Down: nothing listens.
	g.WaitAudit(t, Action("chatty", "report", "done", 0), Deadline)
	g.WaitLog(t, func(l LogLine) bool { return l.Msg == "delivery failed; will retry" && l.Attrs["sink"] == "webhook" }, Deadline)
	// Then 500s.
	col.Listen(t, http.StatusInternalServerError)
	col.WaitRequests(t, 2, Deadline)
	// A restart during the outage.
	g.Stop(t)
	before := len(auditLines(t, g.AuditPath))
	g = StartGuarddConfig(t, Config{Dir: dir, Body: body})
	if !Eventually(Deadline, func() bool { return len(auditLines(t, g.AuditPath)) > before+3 }) {
		t.Fatal("no new events after the restart")
	}
	n, _ := col.Requests()
	col.WaitRequests(t, n+2, Deadline)
	// Recovery.
	col.SetStatus(http.StatusOK)
	time.Sleep(time.Second) // events keep coming while the collector is up
	for _, o := range offenders {
		o.Kill()
		WaitGone(t, o.ID, Deadline)
	}
	time.Sleep(time.Second) // cooldowns end; the last events are written
	lines := auditLines(t, g.AuditPath)
	written := map[string]bool{}
	for _, l := range lines {
		written[l] = true
	}
	var received map[string]map[string]bool // audit line -> ids
	summaries := 0
	complete := Eventually(Deadline, func() bool {
		received, summaries = map[string]map[string]bool{}, 0
		for _, e := range col.Events() {
			switch e.Kind {
			case report.KindAudit:
				if received[string(e.Data)] == nil {
					received[string(e.Data)] = map[string]bool{}
				}
				received[string(e.Data)][e.ID] = true
			case report.KindSummary:
				summaries++
			}
		}
		for l := range written {
			if received[l] == nil {
				return false
			}
		}
		return true
	})
	if !complete {
		missing := 0
		for l := range written {
			if received[l] == nil {
				missing++
			}
		}
		t.Fatalf("%d of %d audit lines never arrived", missing, len(written))
	}
	ids := map[string]string{}
	for line, set := range received {
		if !written[line] {
			t.Errorf("an event that is not in the audit log arrived: %s", line)
		}
		if len(set) != 1 {
			t.Errorf("one audit line arrived under %d ids: %v", len(set), set)
		}
		for id := range set {
			if other, dup := ids[id]; dup {
				t.Errorf("id %s names two events:\n%s\n%s", id, other, line)
			}
			ids[id] = line
		}
	}
	reqs, _ := col.Requests()
	t.Logf("%d audit events, %d received (with repeats), %d summaries, %d requests", len(written), len(col.Events())-summaries, summaries, reqs)
	if len(written) < 10 {
		t.Errorf("only %d events: the test proved little", len(written))
	}
	if n, bad := col.Requests(); bad != 0 {
		t.Errorf("%d of %d requests had a bad signature", bad, n)
	}
	if summaries == 0 {
		t.Error("no host summary arrived")
	}
	for _, e := range col.Events() {
		if e.Kind == report.KindSummary {
			var s report.HostSummary
			if err := json.Unmarshal(e.Data, &s); err != nil || s.Host == "" || s.Processes == 0 || s.NCPU == 0 || s.TopCPU == nil {
				t.Errorf("summary %s: %v %+v", e.ID, err, s)
			}
			break
		}
	}
}

var syslogLine = regexp.MustCompile(`^<(\d+)>1 \S+ \S+ guardd \d+ audit \[guardd@32473 ([^]]*)\] (\{.*\})$`)

func TestSyslogAndJournaldGetEveryEvent(t *testing.T) {
	t.Parallel()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	journal := filepath.Join(t.TempDir(), "journal.socket")
	jl, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: journal, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer jl.Close()
	u := NewUser(t)
	hog := StartBurner(t, u)
	g := StartGuardd(t, Class(u)+reniceRule("hog", "")+fmt.Sprintf(`report {
  syslog {
    network  = "udp"
    address  = %q
    facility = "local3"
  }
  journald {
    socket = %q
  }
  summary {
    interval = "off"
  }
}
`, udp.LocalAddr().String(), journal))
	ev := g.WaitAudit(t, Action("hog", "renice", "done", hog.PID), Deadline)

	buf := make([]byte, 1<<16)
	udp.SetReadDeadline(time.Now().Add(Deadline))
	n, _, err := udp.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	m := syslogLine.FindStringSubmatch(string(buf[:n]))
	if m == nil {
		t.Fatalf("not an RFC 5424 audit message: %q", buf[:n])
	}
	if m[1] != fmt.Sprint(19*8+5) || !strings.Contains(m[2], fmt.Sprintf(`pid="%d"`, hog.PID)) || !strings.Contains(m[2], `action="renice"`) {
		t.Errorf("syslog priority %s, structured data %s", m[1], m[2])
	}
	var env report.Envelope
	if err := json.Unmarshal([]byte(m[3]), &env); err != nil || env.Kind != report.KindAudit {
		t.Fatalf("syslog message: %v", err)
	}
	lines := auditLines(t, g.AuditPath)
	if string(env.Data) != lines[0] {
		t.Errorf("syslog carries %s, the audit log says %s", env.Data, lines[0])
	}

	jl.SetReadDeadline(time.Now().Add(Deadline))
	n, err = jl.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	f := journalFields(t, buf[:n])
	want := map[string]string{"PRIORITY": "5", "SYSLOG_IDENTIFIER": "guardd", "GUARDD_KIND": "audit", "GUARDD_RULE": "hog",
		"GUARDD_ACTION": "renice", "GUARDD_OUTCOME": "done", "GUARDD_PID": fmt.Sprint(hog.PID), "GUARDD_USER": u.Name,
		"GUARDD_NICE": "19", "GUARDD_EVENT_ID": env.ID, "GUARDD_EXE": ev.Exe}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("journal field %s = %q, want %q", k, f[k], v)
		}
	}
	if !strings.Contains(f["MESSAGE"], "hog: renice nice 19 pid") {
		t.Errorf("MESSAGE %q", f["MESSAGE"])
	}
}

// journalFields decodes journald's native datagram format.
func journalFields(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	for len(b) > 0 {
		i := bytes.IndexAny(b, "=\n")
		if i < 0 {
			t.Fatalf("truncated journal entry %q", b)
		}
		if b[i] == '=' {
			end := bytes.IndexByte(b[i:], '\n')
			out[string(b[:i])] = string(b[i+1 : i+end])
			b = b[i+end+1:]
			continue
		}
		n := int(binary.LittleEndian.Uint64(b[i+1 : i+9]))
		out[string(b[:i])] = string(b[i+9 : i+9+n])
		b = b[i+10+n:]
	}
	return out
}
