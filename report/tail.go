package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
	"unicode/utf8"
)

// Envelope is one record that goes upstream: an audit line or a host
// summary, with an id that stays the same through every retry and restart,
// so a receiver that sees an id twice knows it is the same event.
type Envelope struct {
	ID   string          `json:"id"`   // idempotency id: <spool id>-<n>
	Kind string          `json:"kind"` // KindAudit or KindSummary
	Host string          `json:"host"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"` // the audit line (an Event) or a HostSummary
}

// Envelope kinds.
const (
	KindAudit   = "audit"
	KindSummary = "summary"
)

// EnqueueEnvelope gives data (valid JSON) an id and appends it to every
// queue, in tx.
func EnqueueEnvelope(tx *SpoolTx, spoolID, kind, host string, at time.Time, data []byte, queues []string) error {
	n, err := tx.NextEventSeq()
	if err != nil {
		return err
	}
	b, err := appendEnvelope(nil, spoolID, n, kind, host, at, data)
	if err != nil {
		return err
	}
	for _, q := range queues {
		if _, err := tx.Append(q, b); err != nil {
			return err
		}
	}
	return nil
}

// appendEnvelope appends the JSON of an Envelope to b, written by hand:
// every event upstream passes here, and encoding/json would scan data
// again (a RawMessage is re-validated and compacted) and reflect over the
// struct. The output is the same as json.Marshal's for data that
// encoding/json wrote (TestAppendEnvelopeMatchesEncodingJSON); data must
// be valid, compact JSON, as the tail checks, and goes out as it is (the
// same JSON value, without re-escaping <, > and & inside it).
func appendEnvelope(b []byte, spoolID string, seq uint64, kind, host string, at time.Time, data []byte) ([]byte, error) {
	if y := at.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("envelope time %s: year outside [0,9999]", at)
	}
	b = append(b, `{"id":`...)
	b = appendJSONString(b, spoolID+"-"+strconv.FormatUint(seq, 10))
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, kind)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, host)
	b = append(b, `,"time":"`...)
	b = at.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","data":`...)
	b = append(b, data...)
	return append(b, '}'), nil
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it (HTML-safe, U+2028 and U+2029 too); invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// auditLineTime returns the time of an audit line, and whether the line
// is one JSON object that can go upstream as it is. The audit writer puts
// "time" first; other lines take the slow way.
func auditLineTime(line []byte) (time.Time, bool) {
	const prefix = `{"time":"`
	if rest, ok := bytes.CutPrefix(line, []byte(prefix)); ok {
		if end := bytes.IndexByte(rest, '"'); end > 0 {
			if at, err := time.Parse(time.RFC3339Nano, string(rest[:end])); err == nil && json.Valid(line) && isCompactJSON(line) {
				return at, true
			}
		}
	}
	var head struct {
		Time time.Time `json:"time"`
	}
	if json.Unmarshal(line, &head) != nil || !isCompactJSON(line) {
		return time.Time{}, false
	}
	return head.Time, true
}

// isCompactJSON reports whether valid JSON has no whitespace outside its
// strings (what encoding/json's compaction would remove); the audit
// writer writes compact lines.
func isCompactJSON(b []byte) bool {
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString:
			if c == '\\' {
				escaped = true
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return true
}

// AuditTail feeds the spool from the audit log. The audit log is the
// source of truth: an action is journalled first, and the tail reads it
// back from a read position kept in the spool and moved in the same
// transaction that queues what it read. So a crash at any moment neither
// loses an event nor queues one twice.
//
// It follows rotation the way the audit log does it: the old file is read
// to its end before the new one; a file renamed away while guardd was
// stopped is looked for as PATH.1 (logrotate's name).
type AuditTail struct {
	path  string
	host  string
	spool *Spool

	f     *os.File
	ino   uint64
	off   int64
	next  bool // f is a rotated-away file: after its end, go on with path
	buf   []byte
	Warnf func(format string, args ...any) // told about lost or malformed lines; may be nil
	// Log returns the audit log this process writes, when it does (nil
	// otherwise): the tail then waits out a write in flight before it
	// leaves a rotated-away file, and reads every file the log left in
	// order, also when it was rotated more than once between two polls.
	Log func() *AuditLog
}

// writer returns the log written by this process at the tail's path.
func (t *AuditTail) writer() *AuditLog {
	if t.Log == nil {
		return nil
	}
	if l := t.Log(); l != nil && l.Path() == t.path {
		return l
	}
	return nil
}

// auditCursor is the persisted read position.
type auditCursor struct {
	Ino uint64 `json:"ino"`
	Off int64  `json:"off"`
}

const (
	stateAuditCursor = "audit-cursor"
	maxAuditLine     = 1 << 20 // longer lines are not events guardd wrote
	tailChunk        = 4 << 20 // read at most this much per poll: one bounded transaction
)

// DroppedAuditQueue names the drop counter of audit lines that could not
// be forwarded (malformed, or longer than 1 MiB).
const DroppedAuditQueue = "audit-unreadable"

// NewAuditTail returns a tail of the audit log at path.
func NewAuditTail(path, host string, sp *Spool) *AuditTail {
	return &AuditTail{path: path, host: host, spool: sp}
}

func (t *AuditTail) warnf(format string, args ...any) {
	if t.Warnf != nil {
		t.Warnf(format, args...)
	}
}

// Close releases the open file; the position stays in the spool.
func (t *AuditTail) Close() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}

// Forget drops the saved position: with no sink configured nothing needs
// the audit log, and when one comes back it starts at the end.
func (t *AuditTail) Forget() error {
	t.Close()
	return t.spool.Update(func(tx *SpoolTx) error { return tx.DeleteKey(stateAuditCursor) })
}

// open positions the tail at the saved cursor, or at the end of the log
// when there is none.
func (t *AuditTail) open() error {
	var cur *auditCursor
	if err := t.spool.View(func(tx *SpoolTx) error {
		if v := tx.Get(stateAuditCursor); v != nil {
			var c auditCursor
			if json.Unmarshal(v, &c) == nil {
				cur = &c
			}
		}
		return nil
	}); err != nil {
		return err
	}
	f, err := os.Open(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // not written yet
	}
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	ino := inodeOf(fi)
	switch {
	case cur == nil:
		t.f, t.ino, t.off = f, ino, fi.Size() // the history is not news
		return t.saveCursor()
	case cur.Ino == 0: // the old file was read to its end; this one is new
		t.f, t.ino, t.off = f, ino, 0
		return t.saveCursor()
	case cur.Ino == ino:
		t.f, t.ino, t.off = f, ino, cur.Off
		if cur.Off > fi.Size() {
			t.warnf("audit log %s is shorter than where guardd stopped reading (truncated?): reading it from the start", t.path)
			t.off = 0
		}
	default:
		if old, err := os.Open(t.path + ".1"); err == nil {
			if ofi, err := old.Stat(); err == nil && inodeOf(ofi) == cur.Ino {
				f.Close()
				t.f, t.ino, t.off, t.next = old, cur.Ino, cur.Off, true
				return nil
			}
			old.Close()
		}
		t.warnf("audit log %s was rotated away while guardd was stopped and %s.1 is not it: events written in between and not yet forwarded are lost", t.path, t.path)
		t.f, t.ino, t.off = f, ino, 0
	}
	return nil
}

func (t *AuditTail) saveCursor() error {
	return t.spool.Update(func(tx *SpoolTx) error { return t.putCursor(tx) })
}

func (t *AuditTail) putCursor(tx *SpoolTx) error {
	b, _ := json.Marshal(auditCursor{Ino: t.ino, Off: t.off})
	return tx.Put(stateAuditCursor, b)
}

// Poll queues every complete line written since the last poll to each of
// queues and returns how many it queued.
func (t *AuditTail) Poll(queues []string) (int, error) {
	total := 0
	for range 64 { // bounded: a log growing faster than this is caught up next poll
		if t.f == nil {
			if err := t.open(); err != nil || t.f == nil {
				return total, err
			}
		}
		n, eof, err := t.readChunk(queues)
		total += n
		if err != nil || !eof {
			if err != nil {
				return total, err
			}
			continue
		}
		switched, err := t.switchIfRotated()
		if err != nil || !switched {
			return total, err
		}
	}
	return total, nil
}

// readChunk reads up to tailChunk bytes of complete lines and queues them;
// eof says the file has nothing more now.
func (t *AuditTail) readChunk(queues []string) (n int, eof bool, err error) {
	if cap(t.buf) < tailChunk {
		t.buf = make([]byte, tailChunk)
	}
	buf := t.buf[:tailChunk]
	got, err := t.f.ReadAt(buf, t.off)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, false, fmt.Errorf("read audit log: %w", err)
	}
	eof = got < len(buf)
	data := buf[:got]
	end := bytes.LastIndexByte(data, '\n') + 1
	skip := 0
	if end == 0 {
		if got == len(buf) {
			// A chunk without a newline: no line guardd writes is this long.
			end, skip = got, 1
		} else {
			return 0, true, nil // a line being written
		}
	}
	lines := data[:end]
	var bad int
	err = t.spool.Update(func(tx *SpoolTx) error {
		bad, n = 0, 0
		for len(lines) > 0 {
			i := bytes.IndexByte(lines, '\n')
			line := lines
			if i >= 0 {
				line, lines = lines[:i], lines[i+1:]
			} else {
				lines = nil
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if skip > 0 || len(line) > maxAuditLine {
				bad++
				continue
			}
			at, ok := auditLineTime(line)
			if !ok {
				var compacted bytes.Buffer // valid JSON written loosely: forward it compacted
				if json.Compact(&compacted, line) != nil {
					bad++
					continue
				}
				line = compacted.Bytes()
				if at, ok = auditLineTime(line); !ok {
					bad++
					continue
				}
			}
			if err := EnqueueEnvelope(tx, t.spool.ID(), KindAudit, t.host, at, line, queues); err != nil {
				return err
			}
			n++
		}
		if err := tx.CountDropped(DroppedAuditQueue, bad); err != nil {
			return err
		}
		b, _ := json.Marshal(auditCursor{Ino: t.ino, Off: t.off + int64(end)})
		return tx.Put(stateAuditCursor, b)
	})
	if err != nil {
		return 0, false, fmt.Errorf("spool audit events: %w", err)
	}
	t.off += int64(end)
	if bad > 0 {
		t.warnf("%d audit log line(s) in %s could not be read as events and are not forwarded", bad, t.path)
	}
	return n, eof && skip == 0, nil
}

// switchIfRotated moves to the current audit log when the one being read
// was rotated away; it reports whether it switched.
func (t *AuditTail) switchIfRotated() (bool, error) {
	if t.next {
		t.next = false
		if w := t.writer(); w != nil {
			if f, ino, current, ok := w.Next(t.ino); ok {
				t.Close()
				t.f, t.ino, t.off, t.next = f, ino, 0, !current
				return true, t.saveCursor()
			}
			t.warnf("audit log %s was rotated more often than the forwarder could follow: events of the files in between are not forwarded (they are still in the files)", t.path)
		}
		t.Close()
		return t.openNew()
	}
	fi, err := os.Stat(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // removed and not recreated yet: the old file may still grow
	}
	if err != nil {
		return false, err
	}
	if inodeOf(fi) == t.ino {
		if fi.Size() < t.off {
			t.warnf("audit log %s was truncated: reading it from the start", t.path)
			t.off = 0
			return true, t.saveCursor()
		}
		return false, nil
	}
	// The writer reopens before its next write, so what is in the old
	// file now is all it will get but for a write in flight (waited out
	// when the writer is in this process): read the old file to its end
	// once more (the caller loops), then switch.
	if w := t.writer(); w != nil {
		w.Barrier()
	}
	t.next = true
	return true, nil
}

func (t *AuditTail) openNew() (bool, error) {
	f, err := os.Open(t.path)
	if errors.Is(err, os.ErrNotExist) {
		// Removed, not recreated yet: whatever comes next is read from its start.
		t.ino, t.off = 0, 0
		return false, t.saveCursor()
	}
	if err != nil {
		return false, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return false, err
	}
	t.f, t.ino, t.off = f, inodeOf(fi), 0
	return true, t.saveCursor()
}
