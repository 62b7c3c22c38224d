package report

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func testEnvelopes(t *testing.T, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range n {
		nice := 19
		ev := Event{Time: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), Host: "h", Rule: "cpu-hog", RuleAt: "/p.hcl:3", Step: 1,
			Action: "renice", Mode: "enforce", Outcome: OutcomeDone, PID: int32(100 + i), StartTime: 42, UID: 1000, User: "al]i\"ce",
			Comm: "php", Cmdline: "php\nx", Nice: &nice}
		data, _ := json.Marshal(ev)
		b, _ := json.Marshal(Envelope{ID: fmt.Sprintf("sp-%d", i+1), Kind: KindAudit, Host: "h", Time: ev.Time, Data: data})
		out = append(out, b)
	}
	return out
}

func TestWebhookSendsSignedGzipBatches(t *testing.T) {
	secret := []byte("shared secret")
	var mu sync.Mutex
	status := http.StatusOK
	var got []WebhookBatch
	var sigOK []bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ok := VerifySignature(secret, body, r.Header.Get(SignatureHeader))
		if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("headers %v", r.Header)
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Errorf("body is not gzip: %v", err)
			return
		}
		plain, _ := io.ReadAll(zr)
		var b WebhookBatch
		if err := json.Unmarshal(plain, &b); err != nil {
			t.Errorf("body is not JSON: %v", err)
		}
		if r.Header.Get(BatchHeader) != "sp-1" {
			t.Errorf("batch header %q", r.Header.Get(BatchHeader))
		}
		mu.Lock()
		got, sigOK = append(got, b), append(sigOK, ok)
		w.WriteHeader(status)
		mu.Unlock()
	}))
	defer srv.Close()
	sink := &WebhookSink{URL: srv.URL, Secret: secret, Gzip: true, Host: "h", UserAgent: "guardd/test", Client: srv.Client()}
	batch := testEnvelopes(t, 3)
	if err := sink.Send(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !sigOK[0] || got[0].Host != "h" || len(got[0].Events) != 3 || got[0].Sent.IsZero() {
		t.Fatalf("received %+v, signature ok %v", got, sigOK)
	}
	var env Envelope
	json.Unmarshal(got[0].Events[2], &env)
	var ev Event
	json.Unmarshal(env.Data, &ev)
	if env.ID != "sp-3" || ev.PID != 102 || ev.Rule != "cpu-hog" {
		t.Errorf("third event: %+v %+v", env, ev)
	}
	for code, permanent := range map[int]bool{500: false, 503: false, 429: false, 408: false, 400: true, 403: true, 404: true} {
		mu.Lock()
		status = code
		mu.Unlock()
		err := sink.Send(context.Background(), batch)
		if err == nil || IsPermanent(err) != permanent {
			t.Errorf("status %d: %v, permanent %v, want %v", code, err, IsPermanent(err), permanent)
		}
	}
	if VerifySignature(secret, []byte("x"), Sign([]byte("other"), []byte("x"))) {
		t.Error("a signature with another key verifies")
	}
	down := &WebhookSink{URL: "http://127.0.0.1:1/", Client: &http.Client{Timeout: time.Second}}
	if err := down.Send(context.Background(), batch); err == nil || IsPermanent(err) {
		t.Errorf("connection refused: %v, want a temporary error", err)
	}
}

var syslogRE = regexp.MustCompile(`^<(\d+)>1 (\S+) (\S+) (\S+) (\d+) (\S+) \[guardd@32473 (.*?[^\\])\] (\{.*\})$`)

func checkSyslog(t *testing.T, msg string) {
	t.Helper()
	m := syslogRE.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("not RFC 5424: %q", msg)
	}
	if m[1] != strconv.Itoa(19*8+5) || m[2] != "2026-01-02T03:04:05.000006Z" || m[3] != "web1" || m[4] != "guardd" || m[6] != "audit" {
		t.Errorf("header fields %q", m[1:7])
	}
	if !strings.Contains(m[7], `user="al\]i\"ce"`) || !strings.Contains(m[7], `rule="cpu-hog"`) || !strings.Contains(m[7], `pid="100"`) {
		t.Errorf("structured data %q", m[7])
	}
	var env Envelope
	if err := json.Unmarshal([]byte(m[8]), &env); err != nil || env.ID != "sp-1" {
		t.Errorf("message is not the envelope: %v", err)
	}
}

func TestSyslogOverUDPTCPAndUnix(t *testing.T) {
	batch := testEnvelopes(t, 1)

	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	s := &SyslogSink{Network: "udp", Address: udp.LocalAddr().String(), Facility: 19, Tag: "guardd", Host: "web1"}
	defer s.Close()
	if err := s.Send(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	udp.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := udp.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	checkSyslog(t, string(buf[:n]))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tcp := &SyslogSink{Network: "tcp", Address: ln.Addr().String(), Facility: 19, Tag: "guardd", Host: "web1"}
	defer tcp.Close()
	if err := tcp.Send(context.Background(), append(batch, batch...)); err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for range 2 { // octet counting: "LEN SP MSG"
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		lenStr, err := r.ReadString(' ')
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(lenStr))
		msg := make([]byte, n)
		if _, err := io.ReadFull(r, msg); err != nil {
			t.Fatal(err)
		}
		checkSyslog(t, string(msg))
	}

	path := filepath.Join(t.TempDir(), "log")
	ux, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ux.Close()
	us := &SyslogSink{Network: "unix", Address: path, Facility: 19, Tag: "guardd", Host: "web1"}
	defer us.Close()
	if err := us.Send(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	ux.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err = ux.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	checkSyslog(t, string(buf[:n]))

	gone := &SyslogSink{Network: "unix", Address: filepath.Join(t.TempDir(), "none")}
	if err := gone.Send(context.Background(), batch); err == nil || IsPermanent(err) {
		t.Errorf("missing socket: %v, want a temporary error", err)
	}
}

// parseJournal decodes journald's native format.
func parseJournal(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	for len(b) > 0 {
		i := bytes.IndexAny(b, "=\n")
		if i < 0 {
			t.Fatalf("truncated entry: %q", b)
		}
		name := string(b[:i])
		if b[i] == '=' {
			end := bytes.IndexByte(b[i:], '\n')
			out[name] = string(b[i+1 : i+end])
			b = b[i+end+1:]
			continue
		}
		n := binary.LittleEndian.Uint64(b[i+1 : i+9])
		out[name] = string(b[i+9 : i+9+int(n)])
		if b[i+9+int(n)] != '\n' {
			t.Fatal("binary field not newline-terminated")
		}
		b = b[i+10+int(n):]
	}
	return out
}

func TestJournaldNativeProtocol(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socket")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	j := &JournaldSink{Socket: path, Tag: "guardd"}
	defer j.Close()
	if err := j.Send(context.Background(), testEnvelopes(t, 1)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	ln.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := ln.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	f := parseJournal(t, buf[:n])
	want := map[string]string{"PRIORITY": "5", "SYSLOG_IDENTIFIER": "guardd", "GUARDD_KIND": "audit", "GUARDD_EVENT_ID": "sp-1",
		"GUARDD_RULE": "cpu-hog", "GUARDD_ACTION": "renice", "GUARDD_OUTCOME": "done", "GUARDD_PID": "100", "GUARDD_UID": "1000",
		"GUARDD_NICE": "19", "GUARDD_CMDLINE": "php\nx", "MESSAGE": `cpu-hog: renice nice 19 pid 100 (php) of al]i"ce: done`}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("%s = %q, want %q", k, f[k], v)
		}
	}
	var env Envelope
	if err := json.Unmarshal([]byte(f["GUARDD_JSON"]), &env); err != nil || env.ID != "sp-1" {
		t.Errorf("GUARDD_JSON: %v", err)
	}

	// An entry too big for a datagram goes in a sealed memfd.
	big := Envelope{ID: "sp-big", Kind: KindSummary, Host: "h", Time: time.Now(), Data: json.RawMessage(`{"host":"h","pad":"` + strings.Repeat("x", 4<<20) + `"}`)}
	raw, _ := json.Marshal(big)
	if err := j.Send(context.Background(), [][]byte{raw}); err != nil {
		t.Fatal(err)
	}
	oob := make([]byte, unix.CmsgSpace(4))
	ln.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, oobn, _, _, err := ln.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 || oobn == 0 {
		t.Fatalf("big entry came as %d bytes of data, %d of control", n, oobn)
	}
	msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("no descriptor passed: %v", err)
	}
	mf := os.NewFile(uintptr(fds[0]), "memfd")
	defer mf.Close()
	mf.Seek(0, io.SeekStart) // the passed descriptor shares the writer's offset
	data, _ := io.ReadAll(mf)
	if f := parseJournal(t, data); f["GUARDD_EVENT_ID"] != "sp-big" || len(f["GUARDD_JSON"]) < 4<<20 {
		t.Errorf("memfd entry: id %q, json %d bytes", f["GUARDD_EVENT_ID"], len(f["GUARDD_JSON"]))
	}
}

func TestParseMailMap(t *testing.T) {
	m, errs := ParseMailMap([]byte("# customers\nalice: alice@example.jp\nbob:bob@example.jp, ops@bob.example # two\ncarol carol@example.com\n\n" +
		"dave: not an address\neve:\nalice: again@example.jp\nmallory: a@b.c\r\nx y: z@q.r\ntrudy: <t@x.y>\n"))
	want := map[string]string{"alice": "alice@example.jp", "bob": "bob@example.jp,ops@bob.example", "carol": "carol@example.com", "mallory": "a@b.c"}
	for u, a := range want {
		if strings.Join(m[u], ",") != a {
			t.Errorf("%s -> %v, want %s", u, m[u], a)
		}
	}
	if len(errs) != 5 {
		t.Errorf("%d errors, want 5 (dave, eve, alice twice, x y, trudy; a CRLF line is fine): %v", len(errs), errs)
	}
	for _, e := range errs {
		if !strings.HasPrefix(e.Error(), "line ") {
			t.Errorf("error without a line number: %v", e)
		}
	}
}

func FuzzParseMailMap(f *testing.F) {
	f.Add([]byte("alice: alice@example.jp\nbob bob@x.y, c@d.e\n# c\n"))
	f.Add([]byte("a:\x00@b\n:\n\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _ := ParseMailMap(b)
		for u, addrs := range m {
			if u == "" || strings.ContainsAny(u, " \t\n") || len(addrs) == 0 {
				t.Fatalf("bad entry %q -> %q", u, addrs)
			}
			for _, a := range addrs {
				if checkAddress(a) != nil || strings.ContainsAny(a, "\r\n<>") {
					t.Fatalf("bad address %q", a)
				}
			}
		}
	})
}

func FuzzComposeMail(f *testing.F) {
	f.Add("件名", "本文\n", "X-A", "v")
	f.Add("a\r\nBcc: evil@x", ".\r\n.\n", "X-B", "\x00\xff")
	f.Fuzz(func(t *testing.T, subject, body, hname, hvalue string) {
		if hname == "" || strings.ContainsAny(hname, ": \r\n") {
			return
		}
		data := ComposeMail("a@b.c", []string{"d@e.f"}, subject, body, time.Unix(0, 0), "id@h", []MailHeader{{hname, hvalue}})
		m := parseMail(t, data)
		if m.header.Get("Bcc") != "" && !strings.EqualFold(hname, "Bcc") {
			t.Fatalf("header injection: %q", data)
		}
		want := strings.Join(strings.Fields(strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return ' '
			}
			return r
		}, strings.ToValidUTF8(subject, "\uFFFD"))), " ")
		if m.subject != want {
			t.Fatalf("subject %q decodes to %q, want %q", subject, m.subject, want)
		}
	})
}
