package report

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os/exec"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Transport delivers one composed mail. A *PermanentError means the
// other side refused it for good (SMTP 5xx, sendmail's permanent exit
// codes); any other error is worth retrying.
type Transport interface {
	Send(ctx context.Context, from string, rcpt []string, data []byte) error
}

// SMTPTransport delivers through an SMTP relay: STARTTLS when the relay
// offers it (or always, with TLS "require"), AUTH PLAIN when a user is set.
type SMTPTransport struct {
	Relay     string // host:port
	HeloName  string // this host's name, for EHLO
	TLS       string // "auto", "require" or "never"
	Username  string
	Password  string
	Timeout   time.Duration // for the whole session
	TLSConfig *tls.Config   // nil: verify the relay's certificate against the system roots
}

// Send runs one SMTP session. Recipients the relay refuses are reported
// in the error; the mail still goes to those it accepted (a customer's
// full mailbox must not cost the admin's copy).
func (t *SMTPTransport) Send(ctx context.Context, from string, rcpt []string, data []byte) (err error) {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", t.Relay)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", t.Relay, err)
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() }) // the timeout, or a stopping daemon: never wait on a slow relay
	defer stop()
	defer func() {
		if err != nil {
			err = classifySMTP(t.Relay, err)
		}
	}()
	name := t.HeloName
	if name == "" || strings.ContainsAny(name, " \r\n") {
		name = "localhost"
	}
	conn, secure, err := t.startTLS(ctx, raw, name)
	if err != nil {
		raw.Close()
		return err
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout, c.SubmissionTimeout = timeout, timeout
	defer c.Close()
	if err := c.Hello(name); err != nil {
		return err
	}
	if t.Username != "" {
		if !secure && !isLoopback(t.Relay) {
			return Permanent(errors.New("refusing SMTP AUTH without TLS to a relay that is not on this host"))
		}
		if err := c.Auth(sasl.NewPlainClient("", t.Username, t.Password)); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	var refused []string
	var lastRefusal error
	for _, r := range rcpt {
		if err := c.Rcpt(r, nil); err != nil {
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				return err
			}
			refused = append(refused, r)
			lastRefusal = err
		}
	}
	if len(refused) == len(rcpt) {
		return lastRefusal
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	c.Quit()
	if len(refused) > 0 {
		// Delivered to the others; retrying would duplicate their copies.
		return Permanent(fmt.Errorf("delivered except to %s: %w", strings.Join(refused, ", "), lastRefusal))
	}
	return nil
}

// startTLS greets the relay and, unless TLS is "never", upgrades the
// connection with STARTTLS when the relay offers it. go-smtp's client
// only does STARTTLS when told beforehand that the relay offers it, so
// the offer is read here and the client then gets a connection that
// replays a greeting (RFC 5321 4.1.4 allows the EHLO it sends again).
func (t *SMTPTransport) startTLS(ctx context.Context, conn net.Conn, name string) (net.Conn, bool, error) {
	tp := textproto.NewConn(conn)
	code, greeting, err := tp.ReadResponse(220)
	if err != nil {
		return conn, false, smtpErr(err)
	}
	replay := fmt.Sprintf("%d %s\r\n", code, strings.ReplaceAll(greeting, "\n", " "))
	if t.TLS == "never" {
		return &replayConn{Conn: conn, prefix: []byte(replay)}, false, nil
	}
	if err := tp.PrintfLine("EHLO %s", name); err != nil {
		return conn, false, err
	}
	_, ext, err := tp.ReadResponse(250)
	offered := false
	if err == nil {
		for line := range strings.SplitSeq(ext, "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.EqualFold(f[0], "STARTTLS") {
				offered = true
			}
		}
	}
	if !offered {
		if t.TLS == "require" {
			return conn, false, errors.New("the relay does not offer STARTTLS (tls = \"require\")")
		}
		return &replayConn{Conn: conn, prefix: []byte(replay)}, false, nil
	}
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		return conn, false, err
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		return conn, false, fmt.Errorf("STARTTLS: %w", smtpErr(err))
	}
	cfg := t.TLSConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(t.Relay)
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return conn, false, fmt.Errorf("STARTTLS: %w", err)
	}
	return &replayConn{Conn: tc, prefix: []byte(replay)}, true, nil
}

// replayConn reads prefix before what the connection brings.
type replayConn struct {
	net.Conn
	prefix []byte
}

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

func smtpErr(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		return &smtp.SMTPError{Code: te.Code, Message: te.Msg}
	}
	return err
}

// PartialDelivery reports a mail that reached some recipients only: it is
// not retried.
func PartialDelivery(err error) bool {
	return err != nil && strings.Contains(err.Error(), "delivered except to ")
}

// classifySMTP marks 5xx replies permanent and names the relay.
func classifySMTP(relay string, err error) error {
	var p *PermanentError
	if errors.As(err, &p) {
		return err
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code >= 500 && se.Code < 600 {
		return Permanent(fmt.Errorf("smtp %s: %w", relay, err))
	}
	return fmt.Errorf("smtp %s: %w", relay, err)
}

func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SendmailTransport pipes the mail into a sendmail-compatible binary
// (sendmail, Postfix's and Exim's sendmail, msmtp): PATH -i -f FROM -- RCPT...
type SendmailTransport struct {
	Path    string
	Timeout time.Duration
}

// sendmail's exit codes that mean "try again later" (sysexits.h):
// EX_UNAVAILABLE, EX_OSERR, EX_IOERR, EX_TEMPFAIL.
var sendmailTemporary = map[int]bool{69: true, 71: true, 74: true, 75: true}

// Send runs the binary once.
func (t *SendmailTransport) Send(ctx context.Context, from string, rcpt []string, data []byte) error {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := append([]string{"-i", "-f", from, "--"}, rcpt...)
	cmd := exec.CommandContext(ctx, t.Path, args...)
	// Local submission takes the message with LF line ends.
	cmd.Stdin = bytes.NewReader(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(out.String())
	if len(msg) > 300 {
		msg = msg[:300]
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 && !sendmailTemporary[ee.ExitCode()] {
		return Permanent(fmt.Errorf("%s exited %d: %s", t.Path, ee.ExitCode(), msg))
	}
	return fmt.Errorf("%s: %v: %s", t.Path, err, msg)
}
