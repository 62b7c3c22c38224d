//go:build linux

package tests

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net"
	"net/mail"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// MailServer is a real SMTP server (go-smtp's) on loopback that keeps
// every mail it is given.
type MailServer struct {
	Addr string
	srv  *smtp.Server

	mu    sync.Mutex
	mails []Mail
	seen  chan struct{} // closed and replaced on every mail
}

// Mail is one received mail, decoded.
type Mail struct {
	From    string
	Rcpt    []string
	Raw     []byte
	Header  mail.Header
	Subject string // RFC 2047-decoded
	Body    string // transfer-decoded
}

type mailSession struct {
	s   *MailServer
	cur Mail
}

func (m *mailSession) Mail(from string, _ *smtp.MailOptions) error { m.cur.From = from; return nil }
func (m *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	m.cur.Rcpt = append(m.cur.Rcpt, to)
	return nil
}
func (m *mailSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.cur.Raw = raw
	m.s.add(m.cur)
	m.cur = Mail{}
	return nil
}
func (m *mailSession) Reset()        { m.cur = Mail{} }
func (m *mailSession) Logout() error { return nil }

// StartMailServer listens on addr ("" = any free loopback port) until the
// test ends.
func StartMailServer(t testing.TB, addr string) *MailServer {
	t.Helper()
	s := &MailServer{seen: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailSession{s: s}, nil }))
	s.srv.Domain = "mx.test"
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// FreeAddr returns a loopback address nothing listens on (yet): a relay
// that is down.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func (s *MailServer) add(m Mail) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mails = append(s.mails, m)
	close(s.seen)
	s.seen = make(chan struct{})
}

// Mails returns what arrived so far.
func (s *MailServer) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// WaitMails waits until at least n mails arrived and returns them all.
func (s *MailServer) WaitMails(t testing.TB, n int, deadline time.Duration) []Mail {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		s.mu.Lock()
		got, seen := len(s.mails), s.seen
		s.mu.Unlock()
		if got >= n {
			return s.Mails()
		}
		select {
		case <-seen:
		case <-timer.C:
			t.Fatalf("%d mail(s) after %s, want %d", got, deadline, n)
		}
	}
}

// Decode parses a received mail: headers, decoded subject and body.
func (m *Mail) Decode(t testing.TB) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		t.Fatalf("mail does not parse: %v\n%s", err, m.Raw)
	}
	m.Header = msg.Header
	var dec mime.WordDecoder
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		t.Fatalf("subject %q does not decode: %v", msg.Header.Get("Subject"), err)
	}
	body, _ := io.ReadAll(msg.Body)
	switch enc := msg.Header.Get("Content-Transfer-Encoding"); enc {
	case "base64":
		if body, err = base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(body))); err != nil {
			t.Fatalf("body does not decode: %v", err)
		}
	case "7bit", "":
	default:
		t.Fatalf("unexpected Content-Transfer-Encoding %q", enc)
	}
	m.Body = string(body)
}

// mailReport is a report block mailing through relay.
func mailReport(relay, extra string) string {
	return fmt.Sprintf(`report {
  mail {
    relay     = %q
    from      = "guardd@host.test"
    to        = "{{.User}}@example.jp"
    bcc       = ["abuse@example.jp"]
    language  = "ja"
%s
  }
}
`, relay, extra)
}

func TestMailTellsTheCustomerInJapanese(t *testing.T) {
	t.Parallel()
	srv := StartMailServer(t, "")
	u := NewUser(t)
	hog := StartOffenderSpec(t, u, OffenderSpec{Args: []string{"burn", "mail-marker"}, Nice: BurnerNice})
	g := StartGuardd(t, Class(u)+fmt.Sprintf(`rule "cpu-hog" {
  class = "c"
  when  = proc.cpu_percent > %d || proc.nice == 19
  renice {
    nice = 19
  }
  notify {}
}
`, HogPercent)+mailReport(srv.Addr, ""))

	ren := g.WaitAudit(t, Action("cpu-hog", "renice", "done", hog.PID), Deadline)
	note := g.WaitAudit(t, Action("cpu-hog", "notify", "done", hog.PID), Deadline)
	if !strings.Contains(note.Reason, u.Name+"@example.jp") || !strings.Contains(note.Reason, "template cpu-hog.ja;") {
		t.Errorf("notify audit line: reason %q does not name the recipient", note.Reason)
	}
	m := srv.WaitMails(t, 1, Deadline)[0]
	m.Decode(t)

	if m.From != "guardd@host.test" || strings.Join(m.Rcpt, ",") != u.Name+"@example.jp,abuse@example.jp" {
		t.Errorf("envelope: from %q to %v; want guardd@host.test to the customer and the Bcc", m.From, m.Rcpt)
	}
	if m.Header.Get("To") != u.Name+"@example.jp" || m.Header.Get("Bcc") != "" || m.Header.Get("From") != "guardd@host.test" {
		t.Errorf("headers To %q Bcc %q From %q", m.Header.Get("To"), m.Header.Get("Bcc"), m.Header.Get("From"))
	}
	if !strings.Contains(m.Header.Get("Subject"), "=?UTF-8?") {
		t.Errorf("raw subject %q is not RFC 2047 encoded", m.Header.Get("Subject"))
	}
	if !strings.Contains(m.Subject, "CPU使用率の上限を超えたプロセスがありました") || !strings.Contains(m.Subject, u.Name) {
		t.Errorf("decoded subject %q", m.Subject)
	}
	for k, want := range map[string]string{
		"Auto-Submitted": "auto-generated", "Mime-Version": "1.0", "Content-Type": "text/plain; charset=UTF-8",
		"X-Guardd-Rule": "cpu-hog", "X-Guardd-User": u.Name, "X-Guardd-Offences": "1",
	} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("header %s: %q, want %q", k, got, want)
		}
	}
	if d, err := m.Header.Date(); err != nil || time.Since(d) > 5*time.Minute || time.Until(d) > time.Minute {
		t.Errorf("Date %q: %v", m.Header.Get("Date"), err)
	}
	if id := m.Header.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, ">") || !strings.Contains(id, "@") {
		t.Errorf("Message-ID %q", id)
	}
	// What was done, to which process (exe, command line, start time),
	// when, why (the values and the limit), what to do, and the evidence.
	pid := strconv.Itoa(hog.PID)
	for _, want := range []string{
		u.Name + " 様",
		"プロセス " + pid + " の優先度を nice 19 に下げました",
		"プロセスID:     " + pid,
		"プログラム:     " + hog.Exe,
		"コマンドライン: " + strings.Join(hog.Argv, " "),
		"開始時刻:",
		ren.Time.Local().Format("2006-01-02 15:04:05"),
		"proc.cpu_percent > 5 || proc.nice == 19",
		"proc.cpu_percent = ",
		"■ お願い",
		"■ " + ren.Time.Local().Format("2006-01-02 15:04:05 MST") + " 時点のお客様のプロセス",
		"mail-marker",
	} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("body lacks %q:\n%s", want, m.Body)
		}
	}
}

// TestMailZombiesTemplate: a default rule's own embedded template (here
// zombies, in English) reaches the customer of a real zombie factory.
func TestMailZombiesTemplate(t *testing.T) {
	t.Parallel()
	srv := StartMailServer(t, "")
	u := NewUser(t)
	parent := StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Args: []string{"zombies", "6"}})
	g := StartGuardd(t, Class(u)+`rule "zombies" {
  class = "c"
  when  = proc.zombie_children >= 5
  reap {
    grace = "1s"
  }
  notify {}
}
`+strings.Replace(mailReport(srv.Addr, ""), `language  = "ja"`, `language  = "en"`, 1))
	note := g.WaitAudit(t, Action("zombies", "notify", "done", parent.PID), Deadline)
	if !strings.Contains(note.Reason, "template zombies.en;") {
		t.Errorf("notify audit line: reason %q, want the zombies.en template", note.Reason)
	}
	m := srv.WaitMails(t, 1, Deadline)[0]
	m.Decode(t)
	if !strings.Contains(m.Subject, "left finished child processes behind") || !strings.Contains(m.Subject, u.Name) {
		t.Errorf("subject %q is not the zombies template's", m.Subject)
	}
	for _, want := range []string{"Your process " + strconv.Itoa(parent.PID), "waitpid()", "proc.zombie_children = 6"} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("body lacks %q:\n%s", want, m.Body)
		}
	}
}

func TestMailFloodControlOneMailThenOneDigest(t *testing.T) {
	t.Parallel()
	srv := StartMailServer(t, "")
	u := NewUser(t)
	var offenders []*Offender
	for range 25 {
		offenders = append(offenders, StartOffender(t, u, "sleep", "flood-marker"))
	}
	// Every tick, every sleeper offends again (no cooldown): 25 offences
	// per 100 ms, one (user, rule) for flood control.
	g := StartGuarddConfig(t, Config{Interval: "100ms", Body: Class(u) + `rule "flood" {
  class    = "c"
  when     = strcontains(proc.cmdline, "flood-marker")
  cooldown = "0s"
  report {}
  notify {}
}
` + mailReport(srv.Addr, `    interval = "30s"`)})

	notices := func() int {
		n := 0
		for _, ev := range g.Audit(t) {
			if ev.Rule == "flood" && ev.Action == "notify" && ev.Outcome == "done" {
				n++
			}
		}
		return n
	}
	if !Eventually(2*Deadline, func() bool { return notices() >= 1000 }) {
		t.Fatalf("only %d notify steps ran", notices())
	}
	for _, o := range offenders {
		o.Kill()
	}
	for _, o := range offenders {
		WaitGone(t, o.ID, Deadline)
	}
	first := srv.WaitMails(t, 1, Deadline)[0]
	first.Decode(t)
	if got := first.Header.Get("X-Guardd-Offences"); got != "1" {
		t.Errorf("first mail covers %s offences, want 1 (sent at once)", got)
	}
	if n := len(srv.Mails()); n != 1 {
		t.Fatalf("%d mails within the interval, want 1", n)
	}
	// The digest comes once the interval has passed since the first mail.
	mails := srv.WaitMails(t, 2, 30*time.Second+Deadline)
	digest := mails[1]
	digest.Decode(t)
	total := notices()
	want := strconv.Itoa(total - 1)
	if got := digest.Header.Get("X-Guardd-Offences"); got != want {
		t.Errorf("digest covers %s offences, want %s (%d notify steps, one mailed at once)", got, want, total)
	}
	if !strings.Contains(digest.Subject, "【"+want+"件】") || !strings.Contains(digest.Body, "合計 "+want+" 件") {
		t.Errorf("digest subject %q / body lack the count %s:\n%s", digest.Subject, want, digest.Body)
	}
	// The report steps, by outcome (the last ones may be skipped: the
	// sleepers were being killed), add up to the offences.
	sum := 0
	for _, m := range regexp.MustCompile(`(?m)^\s+(\d+) 件  report（(done|skipped)）$`).FindAllStringSubmatch(digest.Body, -1) {
		n, _ := strconv.Atoi(m[1])
		sum += n
	}
	if strconv.Itoa(sum) != want {
		t.Errorf("digest counts %d report actions, want %s:\n%s", sum, want, digest.Body)
	}
	if d1, d2 := first.Header.Get("Date"), digest.Header.Get("Date"); d1 == d2 {
		t.Errorf("both mails dated %s", d1)
	}
	time.Sleep(3 * time.Second) // the mailer checks digests every second: nothing more may come
	if n := len(srv.Mails()); n != 2 {
		t.Errorf("%d mails, want exactly 2 (one, then one digest)", n)
	}
}

func TestMailSurvivesRelayOutageAndRestart(t *testing.T) {
	t.Parallel()
	relay := FreeAddr(t) // down
	u := NewUser(t)
	hog := StartBurner(t, u)
	body := Class(u) + hogRule(`renice {
    nice = 19
  }
  notify {
    template = "cpu-hog"
  }`) + mailReport(relay, `    retry_min = "500ms"
    retry_max = "1s"`)
	dir := t.TempDir()
	g := StartGuarddConfig(t, Config{Dir: dir, Body: body})
	g.WaitAudit(t, Action("hog", "notify", "done", hog.PID), Deadline)
	g.WaitLog(t, Msg("mail not delivered; will retry"), Deadline)
	g.Stop(t) // restarted while the relay is down

	g2 := StartGuarddConfig(t, Config{Dir: dir, Body: body})
	g2.WaitLog(t, Msg("mail not delivered; will retry"), Deadline)
	srv := StartMailServer(t, relay) // the relay comes back
	m := srv.WaitMails(t, 1, Deadline)[0]
	m.Decode(t)
	if !strings.Contains(m.Body, strconv.Itoa(hog.PID)) || strings.Join(m.Rcpt, ",") != u.Name+"@example.jp,abuse@example.jp" {
		t.Errorf("mail to %v:\n%s", m.Rcpt, m.Body)
	}
	g2.WaitLog(t, Msg("mail sent"), Deadline)
	time.Sleep(3 * time.Second) // several retry periods
	if n := len(srv.Mails()); n != 1 {
		t.Errorf("%d mails arrived, want exactly 1", n)
	}
	// The restart did not run the notify again: one notify line in all.
	n := 0
	for _, ev := range g2.Audit(t) {
		if ev.Action == "notify" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d notify lines in the audit log, want 1", n)
	}
	if filepath.Dir(g2.AuditPath) != dir {
		t.Fatal("not the same state")
	}
}
