package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SyslogSDID is the structured-data id of guardd's parameters. 32473 is
// the private enterprise number reserved for examples (RFC 5612); a site
// with its own number can filter on the name before the '@'.
const SyslogSDID = "guardd@32473"

// maxDatagram bounds one UDP syslog message: RFC 5426 only promises 480
// octets and asks for 2048; loopback and most collectors take 8 KiB.
// Longer messages are cut (summaries: use tcp).
const maxDatagram = 8192

// SyslogSink sends each envelope as one RFC 5424 message over UDP, TCP
// (octet-counted framing, RFC 6587 3.4.1) or a local datagram socket
// (/dev/log).
type SyslogSink struct {
	Network  string // "udp", "tcp" or "unix"
	Address  string
	Facility int
	Tag      string // APP-NAME
	Host     string

	mu   sync.Mutex // guards conn
	conn net.Conn
}

// Send writes the batch; a failed write drops the connection so the next
// attempt reconnects. Delivery over UDP and local sockets is as reliable
// as the transport: the write succeeded.
func (s *SyslogSink) Send(ctx context.Context, batch [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		var d net.Dialer
		network := s.Network
		if network == "unix" {
			network = "unixgram"
		}
		c, err := d.DialContext(ctx, network, s.Address)
		if err != nil && s.Network == "unix" {
			c, err = d.DialContext(ctx, "unix", s.Address) // a stream socket (syslog-ng can listen so)
		}
		if err != nil {
			return fmt.Errorf("syslog %s %s: %w", s.Network, s.Address, err)
		}
		s.conn = c
	}
	stop := context.AfterFunc(ctx, func() { s.conn.SetDeadline(time.Now()) })
	defer stop()
	s.conn.SetDeadline(time.Now().Add(30 * time.Second))
	for _, raw := range batch {
		var env Envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			continue // not ours to fix; the dispatcher keeps going
		}
		msg := FormatSyslog(s.Facility, s.Host, s.Tag, os.Getpid(), &env, raw)
		var out []byte
		switch s.Network {
		case "tcp":
			out = append(strconv.AppendInt(nil, int64(len(msg)), 10), ' ')
			out = append(out, msg...)
		case "udp":
			out = msg[:min(len(msg), maxDatagram)]
		default:
			out = msg
		}
		if _, err := s.conn.Write(out); err != nil {
			s.conn.Close()
			s.conn = nil
			return fmt.Errorf("syslog %s %s: %w", s.Network, s.Address, err)
		}
	}
	return nil
}

// Close drops the connection.
func (s *SyslogSink) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// Syslog severities (RFC 5424 6.2.1).
const (
	sevWarning = 4
	sevNotice  = 5
	sevInfo    = 6
)

// FormatSyslog formats one envelope as an RFC 5424 message:
//
//	<PRI>1 TIMESTAMP HOST APP PROCID MSGID [guardd@32473 id=".." rule=".." ...] JSON
//
// MSGID is the envelope kind (audit, summary); the structured data holds
// the fields admins filter on; the message is the envelope's JSON, so a
// collector loses nothing.
func FormatSyslog(facility int, host, app string, pid int, env *Envelope, raw []byte) []byte {
	sev := sevInfo
	params := [][2]string{{"id", env.ID}}
	if env.Kind == KindAudit {
		var ev Event
		if json.Unmarshal(env.Data, &ev) == nil {
			switch ev.Outcome {
			case OutcomeFailed:
				sev = sevWarning
			case OutcomeDone, OutcomeWouldDo:
				sev = sevNotice
			}
			params = append(params, [2]string{"rule", ev.Rule}, [2]string{"action", ev.Action}, [2]string{"outcome", ev.Outcome},
				[2]string{"mode", ev.Mode}, [2]string{"user", ev.User}, [2]string{"uid", strconv.FormatUint(uint64(ev.UID), 10)})
			if ev.PID != 0 {
				params = append(params, [2]string{"pid", strconv.Itoa(int(ev.PID))})
			}
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "<%d>1 %s %s %s %d %s [%s", facility*8+sev, env.Time.UTC().Format("2006-01-02T15:04:05.000000Z"),
		syslogToken(host, 255), syslogToken(app, 48), pid, syslogToken(env.Kind, 32), SyslogSDID)
	for _, p := range params {
		b.WriteString(" ")
		b.WriteString(p[0])
		b.WriteString(`="`)
		b.WriteString(sdEscape(p[1]))
		b.WriteString(`"`)
	}
	b.WriteString("] ")
	b.Write(bytes.TrimRight(raw, "\n"))
	return b.Bytes()
}

// syslogToken makes a header field: printable ASCII without spaces, "-"
// when empty (RFC 5424 6.2: NILVALUE).
func syslogToken(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 33 || r > 126 {
			return '_'
		}
		return r
	}, s)
	if s == "" {
		return "-"
	}
	if len(s) > max {
		s = s[:max]
	}
	return s
}

// sdEscape escapes a PARAM-VALUE: '"', '\' and ']' get a backslash
// (RFC 5424 6.3.3).
func sdEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(strings.ToValidUTF8(s, "\uFFFD"))
}
