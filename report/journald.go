package report

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
)

// JournaldSink writes each envelope as one journal entry with structured
// fields (GUARDD_RULE, GUARDD_PID, ... and GUARDD_JSON, the whole
// envelope), over journald's native protocol: one datagram per entry to
// its socket (systemd.journal-fields(7), sd_journal_sendv(3)).
type JournaldSink struct {
	Socket string
	Tag    string // SYSLOG_IDENTIFIER

	mu   sync.Mutex // guards conn
	conn *net.UnixConn
}

// Send writes the batch.
func (j *JournaldSink) Send(ctx context.Context, batch [][]byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.conn == nil {
		c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: j.Socket, Net: "unixgram"})
		if err != nil {
			return fmt.Errorf("journald %s: %w", j.Socket, err)
		}
		j.conn = c
	}
	for _, raw := range batch {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var env Envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			continue
		}
		if err := sendJournal(j.conn, JournalEntry(&env, raw, j.Tag)); err != nil {
			j.conn.Close()
			j.conn = nil
			return fmt.Errorf("journald %s: %w", j.Socket, err)
		}
	}
	return nil
}

// Close drops the socket.
func (j *JournaldSink) Close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.conn != nil {
		j.conn.Close()
		j.conn = nil
	}
}

// JournalEntry encodes an envelope in journald's native format: one
// "FIELD=value\n" per field, or, for a value with a newline in it,
// "FIELD\n", its length as a little-endian uint64, the value and "\n".
func JournalEntry(env *Envelope, raw []byte, tag string) []byte {
	var b bytes.Buffer
	field := func(name, value string) {
		if value == "" {
			return
		}
		if strings.IndexByte(value, '\n') < 0 {
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(value)
			b.WriteByte('\n')
			return
		}
		b.WriteString(name)
		b.WriteByte('\n')
		binary.Write(&b, binary.LittleEndian, uint64(len(value)))
		b.WriteString(value)
		b.WriteByte('\n')
	}
	prio := sevInfo
	msg := "guardd " + env.Kind
	var fields [][2]string
	switch env.Kind {
	case KindAudit:
		var ev Event
		if json.Unmarshal(env.Data, &ev) == nil {
			switch ev.Outcome {
			case OutcomeFailed:
				prio = sevWarning
			case OutcomeDone, OutcomeWouldDo:
				prio = sevNotice
			}
			msg = describeEvent(&ev)
			fields = [][2]string{
				{"GUARDD_RULE", ev.Rule}, {"GUARDD_RULE_AT", ev.RuleAt}, {"GUARDD_STEP", strconv.Itoa(ev.Step)},
				{"GUARDD_ACTION", ev.Action}, {"GUARDD_MODE", ev.Mode}, {"GUARDD_OUTCOME", ev.Outcome}, {"GUARDD_REASON", ev.Reason},
				{"GUARDD_UID", strconv.FormatUint(uint64(ev.UID), 10)}, {"GUARDD_USER", ev.User},
				{"GUARDD_EXE", ev.Exe}, {"GUARDD_COMM", ev.Comm}, {"GUARDD_CMDLINE", ev.Cmdline}, {"GUARDD_SIGNAL", ev.Signal},
			}
			if ev.PID != 0 {
				fields = append(fields, [2]string{"GUARDD_PID", strconv.Itoa(int(ev.PID))},
					[2]string{"GUARDD_STARTTIME", strconv.FormatUint(ev.StartTime, 10)})
			}
			if ev.Nice != nil {
				fields = append(fields, [2]string{"GUARDD_NICE", strconv.Itoa(*ev.Nice)})
			}
		}
	case KindSummary:
		var s HostSummary
		if json.Unmarshal(env.Data, &s) == nil {
			msg = fmt.Sprintf("host summary: load %.2f %.2f %.2f, %d processes, %d users, file table %.0f%%",
				s.Load1, s.Load5, s.Load15, s.Processes, s.Users, s.FilesOpenPercent)
			fields = [][2]string{
				{"GUARDD_LOAD1", strconv.FormatFloat(s.Load1, 'f', 2, 64)}, {"GUARDD_PROCESSES", strconv.Itoa(s.Processes)},
				{"GUARDD_FILES_OPEN_PERCENT", strconv.FormatFloat(s.FilesOpenPercent, 'f', 1, 64)},
			}
		}
	}
	field("MESSAGE", msg)
	field("PRIORITY", strconv.Itoa(prio))
	field("SYSLOG_IDENTIFIER", tag)
	field("GUARDD_KIND", env.Kind)
	field("GUARDD_EVENT_ID", env.ID)
	field("GUARDD_HOST", env.Host)
	for _, f := range fields {
		field(f[0], f[1])
	}
	field("GUARDD_JSON", string(bytes.TrimRight(raw, "\n")))
	return b.Bytes()
}

// describeEvent is the one-line human text of an audit event.
func describeEvent(ev *Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", ev.Rule, ev.Action)
	if ev.Signal != "" {
		b.WriteString(" SIG" + ev.Signal)
	}
	if ev.Nice != nil {
		fmt.Fprintf(&b, " nice %d", *ev.Nice)
	}
	if ev.PID != 0 {
		fmt.Fprintf(&b, " pid %d (%s)", ev.PID, ev.Comm)
	}
	fmt.Fprintf(&b, " of %s: %s", ev.User, ev.Outcome)
	if ev.Reason != "" {
		b.WriteString(" (" + ev.Reason + ")")
	}
	return b.String()
}
