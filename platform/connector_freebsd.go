//go:build freebsd

package platform

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Connector follows process events on FreeBSD with kqueue(2): an
// EVFILT_PROC filter with NOTE_FORK, NOTE_EXEC, NOTE_EXIT and NOTE_TRACK
// on every process, so that the kernel attaches the filter to each child
// at fork and reports the child (NOTE_CHILD, with its parent's pid) before
// it can run. kqueue has no host-wide process filter: the connector lists
// the table (kern.proc.proc) when it opens and every rescanEvery, and
// attaches to the processes it does not follow yet (those that raced the
// first listing, and the children the kernel could not attach to:
// NOTE_TRACKERR, reported as ErrEventsLost). Where the kernel refuses
// NOTE_TRACK, it falls back to listing the table every pollEvery and
// reporting new and vanished processes as forks and exits; Source says
// which. kqueue has no uid-change event: EventUID never comes on FreeBSD.
type Connector struct {
	kq     int
	poll   *procPoll // nil: following with kqueue
	source string

	buf      []byte // kern.proc.proc
	small    []byte
	events   []unix.Kevent_t
	changes  []unix.Kevent_t
	watched  map[int32]bool // pids with a filter attached (kqueue mode)
	lastScan time.Time

	mu      sync.Mutex // guards the fields below
	stop    bool
	reading bool          // a Read is in progress: it closes the kqueue when it sees stop
	done    chan struct{} // closed by that Read when it returns after stop
}

const (
	// procNotes are the notes each filter asks for.
	procNotes = unix.NOTE_FORK | unix.NOTE_EXEC | unix.NOTE_EXIT | unix.NOTE_TRACK
	// rescanEvery is how often the table is listed to attach to processes
	// not followed yet.
	rescanEvery = time.Second
	// pollEvery is the listing period where kqueue cannot follow forks.
	pollEvery = 100 * time.Millisecond
	// wakeIdent is the EVFILT_USER event Close triggers.
	wakeIdent = 1
)

var procEventSource atomic.Value // string

// ProcEventSource says how the last Connector opened follows process
// events ("" before one was opened), for the daemon's log.
func ProcEventSource() string {
	s, _ := procEventSource.Load().(string)
	return s
}

// OpenConnector starts following process events. The receive buffer size
// of the Linux version has no meaning here.
func OpenConnector(int) (*Connector, error) {
	kq, err := unix.Kqueue()
	if err != nil {
		return nil, fmt.Errorf("kqueue: %w", err)
	}
	unix.CloseOnExec(kq)
	c := &Connector{
		kq:      kq,
		buf:     make([]byte, 256*KinfoProcSize),
		small:   make([]byte, 64),
		events:  make([]unix.Kevent_t, 512),
		changes: make([]unix.Kevent_t, 256),
		watched: map[int32]bool{},
	}
	var wake unix.Kevent_t
	unix.SetKevent(&wake, wakeIdent, unix.EVFILT_USER, unix.EV_ADD|unix.EV_CLEAR)
	if _, err := unix.Kevent(kq, []unix.Kevent_t{wake}, nil, nil); err != nil {
		unix.Close(kq)
		return nil, fmt.Errorf("kqueue EVFILT_USER: %w", err)
	}
	// Probe NOTE_TRACK on ourselves: a kernel without it refuses the
	// filter (EINVAL).
	if err := c.attach([]int32{int32(os.Getpid())}); err != nil {
		c.poll = newProcPoll()
		c.source = fmt.Sprintf("polling kern.proc.proc every %s (kqueue EVFILT_PROC with NOTE_TRACK refused: %v)", pollEvery, err)
	} else {
		c.source = "kqueue EVFILT_PROC with NOTE_TRACK (NOTE_FORK, NOTE_EXEC, NOTE_EXIT), every process attached"
	}
	if err := c.scan(func(ProcEvent) {}); err != nil {
		unix.Close(kq)
		return nil, err
	}
	procEventSource.Store(c.source)
	return c, nil
}

// Source says how the connector follows processes.
func (c *Connector) Source() string { return c.source }

// attach puts the process filter on pids, in batches with EV_RECEIPT so
// that each change reports its own result and no pending event is
// consumed. A pid that exited meanwhile (ESRCH) is not an error; the first
// other refusal is returned.
func (c *Connector) attach(pids []int32) error {
	var firstErr error
	zero := unix.Timespec{}
	for len(pids) > 0 {
		n := min(len(pids), len(c.changes))
		for i, pid := range pids[:n] {
			unix.SetKevent(&c.changes[i], int(pid), unix.EVFILT_PROC, unix.EV_ADD|unix.EV_RECEIPT)
			c.changes[i].Fflags = procNotes
		}
		got, err := unix.Kevent(c.kq, c.changes[:n], c.changes[:n], &zero)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("kevent: %w", err)
		}
		for _, r := range c.changes[:max(got, 0)] {
			pid := int32(r.Ident)
			if r.Flags&unix.EV_ERROR != 0 && r.Data != 0 {
				if e := unix.Errno(r.Data); e != unix.ESRCH && firstErr == nil {
					firstErr = fmt.Errorf("EVFILT_PROC on pid %d: %w", pid, e)
				}
				continue
			}
			c.watched[pid] = true
		}
		pids = pids[n:]
	}
	return firstErr
}

// scan lists the process table: in kqueue mode it attaches to processes
// not followed yet and forgets those gone; in polling mode it reports
// forks and exits.
func (c *Connector) scan(fn func(ProcEvent)) error {
	c.lastScan = time.Now()
	boot, err := bootMicros(&c.small)
	if err != nil {
		return err
	}
	b, err := sysctlRead([]int32{ctlKern, kernProc, kernProcProc}, &c.buf)
	if err != nil {
		return fmt.Errorf("sysctl kern.proc.proc: %w", err)
	}
	var fresh []int32
	listed := make(map[int32]bool, len(c.watched))
	err = ParseKinfoProcs(b, func(k *KinfoProc) {
		if k.Kernel() {
			return
		}
		if c.poll != nil {
			c.poll.seen(k.PID, k.PPID, k.StartSinceBoot(boot), fn)
			return
		}
		listed[k.PID] = true
		if !c.watched[k.PID] && k.Stat != bsdSZOMB {
			fresh = append(fresh, k.PID)
		}
	})
	if err != nil {
		return err
	}
	if c.poll != nil {
		c.poll.done(fn)
		return nil
	}
	for pid := range c.watched {
		if !listed[pid] {
			delete(c.watched, pid) // its exit note was missed
		}
	}
	if err := c.attach(fresh); err != nil {
		// EPERM on a process of another jail, and the like: those stay
		// unfollowed; the tick's samples still count them.
		for _, pid := range fresh {
			c.watched[pid] = true
		}
	}
	return nil
}

// Read blocks until events arrive and calls fn for each. It returns
// ErrEventsLost when the kernel could not follow a child (the caller
// resynchronises and calls Read again), and os.ErrClosed after Close.
func (c *Connector) Read(fn func(ProcEvent)) error {
	c.mu.Lock()
	if c.stop {
		c.mu.Unlock()
		return os.ErrClosed
	}
	c.reading = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.reading = false
		if c.stop {
			unix.Close(c.kq) // Close left it to us: no kevent can still be using it
			close(c.done)
		}
		c.mu.Unlock()
	}()
	period := rescanEvery
	if c.poll != nil {
		period = pollEvery
	}
	for {
		wait := unix.NsecToTimespec(max(period-time.Since(c.lastScan), time.Millisecond).Nanoseconds())
		n, err := unix.Kevent(c.kq, nil, c.events, &wait)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("kevent: %w", err)
		}
		lost := false
		for _, ev := range c.events[:max(n, 0)] {
			switch ev.Filter {
			case unix.EVFILT_USER:
				return os.ErrClosed
			case unix.EVFILT_PROC:
				if ev.Fflags&unix.NOTE_CHILD != 0 {
					c.watched[int32(ev.Ident)] = true
				}
				if ev.Fflags&unix.NOTE_EXIT != 0 {
					delete(c.watched, int32(ev.Ident))
				}
				if ParseProcKevent(ev.Ident, ev.Fflags, ev.Data, fn) {
					lost = true
				}
			}
		}
		if time.Since(c.lastScan) >= period {
			if err := c.scan(fn); err != nil {
				return err
			}
		}
		if lost {
			return ErrEventsLost
		}
	}
}

// Close stops a Read in progress, waits for it to return, and releases the
// kqueue (closed only once no Read can be inside kevent on it).
func (c *Connector) Close() error {
	c.mu.Lock()
	if c.stop {
		c.mu.Unlock()
		return nil
	}
	c.stop = true
	c.done = make(chan struct{})
	reading := c.reading
	c.mu.Unlock()
	if reading {
		var wake unix.Kevent_t
		unix.SetKevent(&wake, wakeIdent, unix.EVFILT_USER, 0)
		wake.Fflags = unix.NOTE_TRIGGER
		unix.Kevent(c.kq, []unix.Kevent_t{wake}, nil, nil)
		<-c.done
		return nil
	}
	return unix.Close(c.kq)
}
