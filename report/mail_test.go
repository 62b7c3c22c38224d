package report

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// testSMTP is a real SMTP server on loopback that keeps what it receives.
type testSMTP struct {
	srv  *smtp.Server
	addr string

	mu       sync.Mutex
	msgs     []received
	rejectTo map[string]int // recipient -> SMTP code to refuse it with
	dataCode int            // refuse DATA with this code (0 = accept)
}

type received struct {
	from string
	to   []string
	data []byte
	tls  bool
	user string
}

type testSession struct {
	s    *testSMTP
	conn *smtp.Conn
	cur  received
}

func (ss *testSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (ss *testSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "guardd" || pass != "s3cret" {
			return smtp.ErrAuthFailed
		}
		ss.cur.user = user
		return nil
	}), nil
}
func (ss *testSession) Mail(from string, _ *smtp.MailOptions) error { ss.cur.from = from; return nil }
func (ss *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	code := ss.s.rejectTo[to]
	ss.s.mu.Unlock()
	if code != 0 {
		return &smtp.SMTPError{Code: code, Message: "no such user"}
	}
	ss.cur.to = append(ss.cur.to, to)
	return nil
}
func (ss *testSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.dataCode != 0 {
		return &smtp.SMTPError{Code: ss.s.dataCode, Message: "refused"}
	}
	_, ss.cur.tls = ss.conn.TLSConnectionState()
	ss.cur.data = b
	ss.s.msgs = append(ss.s.msgs, ss.cur)
	ss.cur = received{}
	return nil
}
func (ss *testSession) Reset()        { ss.cur = received{} }
func (ss *testSession) Logout() error { return nil }

func startTestSMTP(t *testing.T, addr string, tlsConf *tls.Config) *testSMTP {
	t.Helper()
	s := &testSMTP{rejectTo: map[string]int{}}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &testSession{s: s, conn: c}, nil
	}))
	s.srv.Domain = "mx.test"
	s.srv.TLSConfig = tlsConf
	s.srv.AllowInsecureAuth = tlsConf == nil
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *testSMTP) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// parsedMail is a received mail, decoded.
type parsedMail struct {
	header  mail.Header
	subject string
	body    string
}

func parseMail(t *testing.T, data []byte) parsedMail {
	t.Helper()
	for _, line := range strings.SplitAfter(string(data), "\r\n") {
		if len(strings.TrimSuffix(line, "\r\n")) > 998 {
			t.Errorf("line longer than 998 octets")
		}
		if strings.Contains(strings.TrimSuffix(line, "\r\n"), "\n") || strings.Contains(strings.TrimSuffix(line, "\r\n"), "\r") {
			t.Errorf("bare CR or LF in %q", line)
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(m.Body)
	if m.Header.Get("Content-Transfer-Encoding") == "base64" {
		body, err = base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(body)))
		if err != nil {
			t.Fatal(err)
		}
	}
	return parsedMail{m.Header, subject, string(body)}
}

func TestComposeMailJapanese(t *testing.T) {
	subject := "[web1] CPU使用率の上限を超えたプロセスがありました（alice）とても長い件名でも読めること"
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("JST", 9*3600))
	data := ComposeMail("guardd@web1.example.jp", []string{"alice@example.jp"}, subject, "本文です。\n\n二行目\r\n", at,
		MessageID("n-1", "web1.example.jp"), []MailHeader{{"X-Guardd-Rule", "cpu-hog"}, {"X-Evil", "a\r\nBcc: x@evil"}})
	for _, line := range strings.Split(string(data), "\r\n") {
		if line == "" {
			break
		}
		if len(line) > 78 {
			t.Errorf("header line of %d characters: %q", len(line), line)
		}
	}
	m := parseMail(t, data)
	if m.subject != subject {
		t.Errorf("subject decodes to %q, want %q", m.subject, subject)
	}
	if m.body != "本文です。\n\n二行目\n" {
		t.Errorf("body %q", m.body)
	}
	want := map[string]string{
		"From": "guardd@web1.example.jp", "To": "alice@example.jp", "Date": "Fri, 02 Jan 2026 03:04:05 +0900",
		"Message-Id": "<n-1.guardd@web1.example.jp>", "Mime-Version": "1.0", "Content-Type": "text/plain; charset=UTF-8",
		"Auto-Submitted": "auto-generated", "X-Guardd-Rule": "cpu-hog", "X-Evil": "a Bcc: x@evil",
	}
	for k, v := range want {
		if got := m.header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if m.header.Get("Bcc") != "" {
		t.Error("a Bcc header was injected")
	}
	if _, err := m.header.Date(); err != nil {
		t.Errorf("Date does not parse: %v", err)
	}

	ascii := parseMail(t, ComposeMail("a@b.c", []string{"d@e.f", "g@h.i"}, "plain", ".dot line\nx", at, "id@h", nil))
	if ascii.header.Get("Content-Transfer-Encoding") != "7bit" || ascii.body != ".dot line\r\nx\r\n" || ascii.header.Get("To") != "d@e.f, g@h.i" {
		t.Errorf("ascii mail: %q %q %q", ascii.header.Get("Content-Transfer-Encoding"), ascii.body, ascii.header.Get("To"))
	}
}

func TestEmbeddedTemplatesRenderEveryRuleInBothLanguages(t *testing.T) {
	ts, err := LoadMailTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]bool{}
	for _, key := range ts.Names() { // name.lang
		rules[key[:strings.LastIndexByte(key, '.')]] = true
	}
	for rule := range rules {
		for _, lang := range []string{"en", "ja"} {
			mt, err := ts.Get(rule, lang)
			if err != nil {
				t.Fatal(err)
			}
			for _, digest := range []bool{false, true} {
				d := sampleMailData(lang)
				if !digest {
					d.Digest = nil
				}
				subject, body, err := mt.Render(d)
				if err != nil {
					t.Fatalf("%s.%s: %v", rule, lang, err)
				}
				for _, want := range []string{d.Host, d.User} {
					if !strings.Contains(subject, want) {
						t.Errorf("%s.%s subject %q lacks %q", rule, lang, subject, want)
					}
				}
				// What was done, to which process, when, why and the evidence.
				for _, want := range []string{"4242", "/usr/bin/php8.2", "php rebuild-index.php", "2026-01-02", "proc.cpu_percent > 80", "99.5", "nice 19", "SIGTERM", "sample-1"} {
					if !strings.Contains(body, want) {
						t.Errorf("%s.%s body lacks %q:\n%s", rule, lang, want, body)
					}
				}
				if digest != strings.Contains(subject, "2") {
					t.Errorf("%s.%s digest=%v subject %q", rule, lang, digest, subject)
				}
				if lang == "ja" && !strings.ContainsAny(subject, "のをにがはで") {
					t.Errorf("%s.ja subject is not Japanese: %q", rule, subject)
				}
				if strings.Contains(body, "<no value>") || strings.Contains(subject, "<no value>") {
					t.Errorf("%s.%s renders <no value>", rule, lang)
				}
			}
		}
	}
	if mt, _ := ts.Resolve("", "cpu-hog", "ja"); mt.Name != "cpu-hog" {
		t.Errorf("notify {} in rule cpu-hog resolves to %s", mt.Name)
	}
	if mt, _ := ts.Resolve("", "my-rule", "en"); mt.Name != GenericTemplate {
		t.Errorf("notify {} in an unknown rule resolves to %s", mt.Name)
	}
	if _, err := ts.Resolve("nonesuch", "cpu-hog", "en"); err == nil {
		t.Error("a missing template resolves")
	}
}

func TestAdminTemplatesOverride(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cpu-hog.ja.tmpl"), []byte("Subject: 独自の件名 {{.User}}\n\n{{.User}} 様\n{{template \"processes\" .}}"), 0o644)
	os.WriteFile(filepath.Join(dir, "php-abuse.en.tmpl"), []byte("Subject: php {{.Rule}}\n\nbody {{.Process.PID}}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "README"), []byte("not a template"), 0o644)
	ts, err := LoadMailTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := ts.Get("cpu-hog", "ja")
	subject, body, err := mt.Render(sampleMailData("ja"))
	if err != nil || subject != "独自の件名 alice" || !strings.Contains(body, "php rebuild-index.php") {
		t.Errorf("override: %q %q %v", subject, body, err)
	}
	if !ts.Has("php-abuse", "en") || !ts.Has("cpu-hog", "en") {
		t.Error("new template missing, or the embedded English one lost")
	}

	for name, text := range map[string]string{
		"broken.en.tmpl":    "Subject: {{.User\n\nbody",
		"nosubject.en.tmpl": "Hello\n\nbody",
		"badfield.en.tmpl":  "Subject: x\n\n{{.Nonesuch.Field}}",
		"nolang.tmpl":       "Subject: x\n\nbody",
	} {
		bad := t.TempDir()
		os.WriteFile(filepath.Join(bad, name), []byte(text), 0o644)
		if _, err := LoadMailTemplates(bad); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v, want one naming the file", name, err)
		}
	}
	if _, err := LoadMailTemplates(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing directory loads")
	}
}

func notice(user, rule string, pid int32, at time.Time) *Notice {
	return &Notice{ID: fmt.Sprintf("%s-%s-%d-%d", user, rule, pid, at.UnixNano()), Time: at, Host: "h.test", Rule: rule, User: user, UID: 1000,
		Limit: "proc.cpu_percent > 5", Values: map[string]any{"proc.cpu_percent": 50.0},
		Process:  &ProcessInfo{PID: pid, Comm: "burn", Cmdline: "burn it"},
		Actions:  []ActionInfo{{Time: at, Step: 1, Action: "renice", Outcome: OutcomeDone, PID: pid}},
		Interval: time.Hour, MinOffences: 1}
}

func TestFloodControlOneMailThenOneDigest(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := &floodState{}
	var plans []*mailPlan
	for i := range 1000 {
		if p := st.offence(notice("u", "r", int32(100+i%7), t0.Add(time.Duration(i)*time.Second))); p != nil {
			plans = append(plans, p)
		}
	}
	if len(plans) != 1 || plans[0].digest != nil || plans[0].notice.Time != t0 {
		t.Fatalf("1000 offences within the hour gave %d mails, want one at once", len(plans))
	}
	if p, keep := st.due(t0.Add(59 * time.Minute)); p != nil || !keep {
		t.Fatal("digest before the interval passed")
	}
	p, keep := st.due(t0.Add(time.Hour))
	if p == nil || p.digest == nil || !keep {
		t.Fatal("no digest once the interval passed")
	}
	d := p.digest
	if d.Offences != 999 || len(d.Actions) != 1 || d.Actions[0].Count != 999 || len(d.Processes) != 7 {
		t.Errorf("digest %+v", d)
	}
	total := 0
	for _, pr := range d.Processes {
		total += pr.Count
	}
	if total != 999 || !d.Since.Equal(t0.Add(time.Second)) || !d.Until.Equal(t0.Add(999*time.Second)) {
		t.Errorf("digest process counts %d, since %s until %s", total, d.Since, d.Until)
	}
	if p, keep := st.due(t0.Add(2 * time.Hour)); p != nil || keep {
		t.Error("a quiet interval after the digest should end the state")
	}
}

func TestFloodControlMinOffences(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mk := func(at time.Duration) *Notice {
		n := notice("u", "r", 1, t0.Add(at))
		n.MinOffences = 3
		return n
	}
	st := &floodState{}
	if st.offence(mk(0)) != nil || st.offence(mk(time.Minute)) != nil {
		t.Fatal("mailed before min_offences")
	}
	// The third comes after the interval: the window starts over.
	if st.offence(mk(2*time.Hour)) != nil {
		t.Fatal("offences from an old window counted")
	}
	st.offence(mk(2*time.Hour + time.Minute))
	p := st.offence(mk(2*time.Hour + 2*time.Minute))
	if p == nil || p.digest == nil || p.digest.Offences != 3 {
		t.Fatalf("third offence in the window: plan %+v", p)
	}
}

type mailTest struct {
	t      *testing.T
	spool  *Spool
	mailer *Mailer
	cancel context.CancelFunc
	done   chan struct{}
}

func startMailer(t *testing.T, path string, cfg *MailerConfig) *mailTest {
	t.Helper()
	sp := openTestSpool(t, path, SpoolLimits{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	m := NewMailer(sp, cfg, log)
	ctx, cancel := context.WithCancel(context.Background())
	mt := &mailTest{t: t, spool: sp, mailer: m, cancel: cancel, done: make(chan struct{})}
	go func() { m.Run(ctx); close(mt.done) }()
	t.Cleanup(mt.stop)
	return mt
}

func (mt *mailTest) stop() {
	if mt.cancel == nil {
		return
	}
	mt.cancel()
	<-mt.done
	mt.spool.Close()
	mt.cancel = nil
}

func mailerConfig(t *testing.T, relay string) *MailerConfig {
	t.Helper()
	ts, err := LoadMailTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	return &MailerConfig{
		Transport: &SMTPTransport{Relay: relay, HeloName: "h.test", TLS: "auto", Timeout: 5 * time.Second},
		From:      "guardd@h.test", Bcc: []string{"abuse@h.test"}, Language: "ja", Hostname: "h.test", Templates: ts,
		Recipients:  func(user string, _ uint32) ([]string, error) { return []string{user + "@example.jp"}, nil },
		Retry:       Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond},
		GiveUp:      time.Hour,
		MaxAttempts: 2,
	}
}

func TestMailerDeliversOverSMTP(t *testing.T) {
	srv := startTestSMTP(t, "", nil)
	mt := startMailer(t, filepath.Join(t.TempDir(), "spool.db"), mailerConfig(t, srv.addr))
	mt.mailer.Offence(notice("alice", "cpu-hog", 4242, time.Now()))
	waitFor(t, "the mail", func() bool { return len(srv.received()) == 1 })
	got := srv.received()[0]
	if got.from != "guardd@h.test" || strings.Join(got.to, ",") != "alice@example.jp,abuse@h.test" {
		t.Errorf("envelope from %q to %v", got.from, got.to)
	}
	m := parseMail(t, got.data)
	if !strings.Contains(m.subject, "CPU使用率の上限を超えた") || !strings.Contains(m.subject, "alice") {
		t.Errorf("subject %q", m.subject)
	}
	if m.header.Get("To") != "alice@example.jp" || m.header.Get("Auto-Submitted") != "auto-generated" || m.header.Get("X-Guardd-Offences") != "1" {
		t.Errorf("headers %v", m.header)
	}
	if !strings.Contains(m.body, "4242") || !strings.Contains(m.body, "proc.cpu_percent > 5") {
		t.Errorf("body:\n%s", m.body)
	}
	waitFor(t, "the sent count", func() bool { return mt.mailer.Stats.Sent.Load() == 1 })
	if mt.mailer.Stats.Sent.Load() != 1 || mt.mailer.Stats.Queued.Load() != 1 {
		t.Errorf("stats sent %d queued %d", mt.mailer.Stats.Sent.Load(), mt.mailer.Stats.Queued.Load())
	}
}

func TestMailerSTARTTLSAndAuth(t *testing.T) {
	conf, pool := selfSigned(t)
	srv := startTestSMTP(t, "", conf)
	cfg := mailerConfig(t, srv.addr)
	cfg.Transport = &SMTPTransport{Relay: srv.addr, HeloName: "h.test", TLS: "require", Username: "guardd", Password: "s3cret",
		Timeout: 5 * time.Second, TLSConfig: &tls.Config{RootCAs: pool}}
	mt := startMailer(t, filepath.Join(t.TempDir(), "spool.db"), cfg)
	mt.mailer.Offence(notice("alice", "cpu-hog", 1, time.Now()))
	waitFor(t, "the mail", func() bool { return len(srv.received()) == 1 })
	if got := srv.received()[0]; !got.tls || got.user != "guardd" {
		t.Errorf("tls %v user %q, want STARTTLS and AUTH as guardd", got.tls, got.user)
	}

	// Without TLS on offer, "require" refuses; AUTH in clear to a remote relay is refused too.
	plain := startTestSMTP(t, "", nil)
	err := (&SMTPTransport{Relay: plain.addr, TLS: "require", Timeout: 5 * time.Second}).Send(context.Background(), "a@b.c", []string{"d@e.f"}, []byte("x\r\n"))
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("tls=require without STARTTLS: %v", err)
	}
	if isLoopback("mail.example.jp:25") || !isLoopback("127.0.0.1:25") || !isLoopback("[::1]:25") || !isLoopback("localhost:25") {
		t.Error("isLoopback")
	}
}

func TestMailerRetriesUntilTheRelayIsUpAndSurvivesRestart(t *testing.T) {
	// Reserve a port, then leave it closed: the relay is down.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	path := filepath.Join(t.TempDir(), "spool.db")
	cfg := mailerConfig(t, addr)
	mt := startMailer(t, path, cfg)
	mt.mailer.Offence(notice("alice", "cpu-hog", 1, time.Now()))
	waitFor(t, "failed attempts", func() bool { return mt.mailer.Stats.TempFailures.Load() >= 2 })
	mt.stop() // a daemon restart while the relay is down

	srv := startTestSMTP(t, addr, nil)
	mt = startMailer(t, path, cfg)
	waitFor(t, "the mail after the restart", func() bool { return len(srv.received()) >= 1 })
	time.Sleep(300 * time.Millisecond) // several retry periods: nothing more may come
	if n := len(srv.received()); n != 1 {
		t.Errorf("%d mails arrived, want exactly 1", n)
	}
}

func TestMailerDropsPermanentFailuresAfterBoundedAttempts(t *testing.T) {
	srv := startTestSMTP(t, "", nil)
	srv.dataCode = 554
	mt := startMailer(t, filepath.Join(t.TempDir(), "spool.db"), mailerConfig(t, srv.addr))
	mt.mailer.Offence(notice("alice", "cpu-hog", 1, time.Now()))
	waitFor(t, "the drop", func() bool { return mt.mailer.Stats.Dropped.Load() == 1 })
	if n := mt.mailer.Stats.PermFailures.Load(); n != 2 {
		t.Errorf("%d permanent failures before the drop, want max_attempts = 2", n)
	}
	st, _ := mt.spool.Stats()
	if st[MailQueue].Records != 0 || st[MailQueue].Dropped != 1 {
		t.Errorf("outbox %+v, want empty with 1 dropped", st[MailQueue])
	}

	// A refused customer address still gets the admin's copy, once.
	srv.mu.Lock()
	srv.dataCode = 0
	srv.rejectTo["bob@example.jp"] = 550
	srv.mu.Unlock()
	mt.mailer.Offence(notice("bob", "cpu-hog", 2, time.Now()))
	waitFor(t, "the admin copy", func() bool { return len(srv.received()) == 1 })
	time.Sleep(200 * time.Millisecond)
	if got := srv.received(); len(got) != 1 || strings.Join(got[0].to, ",") != "abuse@h.test" {
		t.Errorf("received %+v, want one mail to the admin only", got)
	}
}

func TestSendmailTransport(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "sendmail")
	out := filepath.Join(dir, "out")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" > "+out+".args\ncat > "+out+"\nexit ${SENDMAIL_EXIT:-0}\n"), 0o755)
	tr := &SendmailTransport{Path: script, Timeout: 5 * time.Second}
	msg := ComposeMail("guardd@h", []string{"alice@example.jp"}, "件名", "本文", time.Now(), "x@h", nil)
	if err := tr.Send(context.Background(), "guardd@h", []string{"alice@example.jp", "abuse@h"}, msg); err != nil {
		t.Fatal(err)
	}
	args, _ := os.ReadFile(out + ".args")
	if strings.TrimSpace(string(args)) != "-i -f guardd@h -- alice@example.jp abuse@h" {
		t.Errorf("args %q", args)
	}
	got, _ := os.ReadFile(out)
	if bytes.Contains(got, []byte("\r\n")) || parseMail(t, bytes.ReplaceAll(got, []byte("\n"), []byte("\r\n"))).subject != "件名" {
		t.Errorf("sendmail got %q", got)
	}
	for code, permanent := range map[string]bool{"75": false, "67": true} {
		t.Setenv("SENDMAIL_EXIT", code)
		err := tr.Send(context.Background(), "guardd@h", []string{"a@b"}, msg)
		if err == nil || IsPermanent(err) != permanent {
			t.Errorf("exit %s: %v, permanent %v, want %v", code, err, IsPermanent(err), permanent)
		}
	}
	err := (&SendmailTransport{Path: filepath.Join(dir, "missing")}).Send(context.Background(), "a@b", []string{"c@d"}, msg)
	if err == nil || IsPermanent(err) {
		t.Errorf("missing binary: %v, want a temporary error", err)
	}
	var pe *PermanentError
	if errors.As(Permanent(errors.New("x")), &pe) != true {
		t.Error("Permanent")
	}
}
