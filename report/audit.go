// Package report tells what guardd did: the audit log (the source of truth),
// and later customer mail and upstream sinks. It never acts on processes.
package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Outcomes of an action.
const (
	OutcomeDone    = "done"     // the action took effect
	OutcomeWouldDo = "would-do" // monitor mode: what would have happened
	OutcomeFailed  = "failed"   // tried and failed; Reason says why
	OutcomeSkipped = "skipped"  // not tried: the process is gone, protected, or no longer matches
)

// Event is one line of the audit log: a decision and what came of it.
// Field names are a contract with admins' tooling: extend, never rename.
type Event struct {
	Time    time.Time `json:"time"`
	Host    string    `json:"host"`
	Rule    string    `json:"rule"`
	RuleAt  string    `json:"rule_at"`         // file:line of the rule
	Step    int       `json:"step"`            // 1-based step of the rule
	Action  string    `json:"action"`          // renice, kill, stop, report, ...
	Mode    string    `json:"mode"`            // enforce or monitor
	Outcome string    `json:"outcome"`         // done, would-do, failed, skipped
	Reason  string    `json:"reason,omitzero"` // why failed or skipped, or what happened

	PID       int32  `json:"pid,omitzero"`
	StartTime uint64 `json:"starttime,omitzero"` // clock ticks after boot: (pid, starttime) is the identity
	UID       uint32 `json:"uid"`
	User      string `json:"user"`
	Exe       string `json:"exe,omitzero"`
	Comm      string `json:"comm,omitzero"`
	Cmdline   string `json:"cmdline,omitzero"`

	Signal string `json:"signal,omitzero"` // kill/stop: the signal sent
	Nice   *int   `json:"nice,omitzero"`   // renice: the new nice value

	Values map[string]any `json:"values,omitzero"` // observed values the rule's condition used

	// Listeners (listen blocks): the socket a kill or a refused bind() was about.
	Proto string `json:"proto,omitzero"` // tcp or udp
	Addr  string `json:"addr,omitzero"`  // local address: 0.0.0.0, ::1, ...
	Port  uint16 `json:"port,omitzero"`  // local port
	Count int    `json:"count,omitzero"` // refused binds this line stands for (the same bind repeated within one tick)

	Mount string         `json:"mount,omitzero"` // filesystem rules: the filesystem's mount point
	Locks []LockEvidence `json:"locks,omitzero"` // lock rules: the file locks the process holds or waits on (report/evidence.go)
	Clean *CleanEvidence `json:"clean,omitzero"` // clean_tmp: what was (or would be) removed (report/evidence.go)
}

// AuditLog appends events as JSON lines. Each Write is one write(2) on an
// O_APPEND descriptor, so a line is never interleaved or half-written by
// guardd; Sync makes a batch durable. The file is reopened when it was
// rotated away (renamed or removed), before the next write, and at once
// on Reopen (SIGUSR1).
type AuditLog struct {
	path string

	mu  sync.Mutex // guards the fields below
	f   *os.File
	ino uint64
	buf bytes.Buffer
	// left are the files the log moved away from, oldest first, still
	// open so that a tail in this process (Next) can read each to its end
	// in order, also when the log was rotated twice between two polls.
	left []leftFile

	beforeSync func() // tests: a slow disk, called outside mu; nil otherwise
}

type leftFile struct {
	f    *os.File
	ino  uint64
	next uint64 // the file written after it
}

// maxLeftFiles bounds the rotated-away files kept open for a tail: a
// tail that falls further behind (rotations faster than it polls) loses
// the oldest, and says so.
const maxLeftFiles = 64

// OpenAuditLog opens (creating it and its directory) the audit log.
func OpenAuditLog(path string) (*AuditLog, error) {
	a := &AuditLog{path: path}
	if err := a.open(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *AuditLog) open() error {
	if err := os.MkdirAll(filepath.Dir(a.path), 0o750); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	// Read-write: a tail in this process reads rotated-away files
	// through these descriptors (Next).
	f, err := os.OpenFile(a.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	a.f, a.ino = f, inodeOf(fi)
	return nil
}

// leave keeps old, the file just moved away from, for Next.
func (a *AuditLog) leave(old *os.File, oldIno uint64) {
	if oldIno == a.ino { // reopened the same file: nothing was left
		old.Close()
		return
	}
	a.left = append(a.left, leftFile{f: old, ino: oldIno, next: a.ino})
	if len(a.left) > maxLeftFiles {
		a.left[0].f.Close()
		a.left = append(a.left[:0], a.left[1:]...)
	}
}

// Next returns, for a reader that has read the file with inode ino to
// its end, the file the log wrote after it, opened anew for reading, and
// whether that one is the log's current file. Taking the lock, it also
// waits out a write in flight: once the log has moved past ino, nothing
// more is written to that file. ok is false when ino is the current
// file, or unknown (left too long ago, or written by another process).
func (a *AuditLog) Next(ino uint64) (f *os.File, nextIno uint64, current, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, l := range a.left {
		if l.ino != ino {
			continue
		}
		src, cur := a.f, true
		if i+1 < len(a.left) {
			src, cur = a.left[i+1].f, false
		}
		if src == nil {
			return nil, 0, false, false
		}
		fd, err := syscall.Dup(int(src.Fd()))
		if err != nil {
			return nil, 0, false, false
		}
		// What came before is read: let it go.
		for _, done := range a.left[:i+1] {
			done.f.Close()
		}
		a.left = append(a.left[:0], a.left[i+1:]...)
		return os.NewFile(uintptr(fd), a.path), l.next, cur, true
	}
	return nil, 0, false, false
}

// Barrier returns once no write that may still go to a rotated-away
// file is in flight.
func (a *AuditLog) Barrier() {
	a.mu.Lock()
	//lint:ignore SA2001 an empty critical section is the point: it waits out a Write in flight
	a.mu.Unlock()
}

// Path returns the file the log writes to.
func (a *AuditLog) Path() string { return a.path }

// Write appends one event.
func (a *AuditLog) Write(ev *Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return errors.New("audit log closed")
	}
	if err := a.reopenIfRotated(); err != nil {
		return err
	}
	a.buf.Reset()
	enc := json.NewEncoder(&a.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		return fmt.Errorf("audit log: encode: %w", err)
	}
	if _, err := a.f.Write(a.buf.Bytes()); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return nil
}

func (a *AuditLog) reopenIfRotated() error {
	fi, err := os.Stat(a.path)
	if err == nil && inodeOf(fi) == a.ino {
		return nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("audit log: %w", err)
	}
	old, oldIno := a.f, a.ino
	if err := a.open(); err != nil {
		return err
	}
	a.leave(old, oldIno)
	return nil
}

// Reopen closes the file and opens the path again (SIGUSR1 after a
// rotation): every line written before Reopen is in the old file, every
// line after it in the new one. The old file is fsynced first, so what
// the rotation moved away is on disk. On error the old file stays open.
func (a *AuditLog) Reopen() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return errors.New("audit log closed")
	}
	old, oldIno := a.f, a.ino
	if err := a.open(); err != nil {
		a.f = old
		return err
	}
	old.Sync()
	a.leave(old, oldIno)
	return nil
}

// Sync flushes written events to stable storage. The fsync runs outside
// the log's lock: a Write (the fork-storm fast path journalling a kill)
// never waits behind a slow disk. An *os.File is safe for a concurrent
// Close; a file closed meanwhile was fsynced by Close or Reopen.
func (a *AuditLog) Sync() error {
	a.mu.Lock()
	f := a.f
	a.mu.Unlock()
	if f == nil {
		return nil
	}
	if a.beforeSync != nil {
		a.beforeSync()
	}
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// Close closes the log.
func (a *AuditLog) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	a.f.Sync() // what was written is on disk (a reload that moves the log closes the old one)
	err := a.f.Close()
	a.f = nil
	for _, l := range a.left {
		l.f.Close()
	}
	a.left = nil
	return err
}

func inodeOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
