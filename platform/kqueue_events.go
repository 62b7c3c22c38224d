package platform

// FreeBSD's process events come from kqueue(2): an EVFILT_PROC filter on
// a process with NOTE_TRACK follows it across fork, the kernel attaching
// the same filter to each child (kern_event.c, knote_fork). These values
// are FreeBSD's ABI (sys/sys/event.h), kept here without a build tag so
// that the decoding below is tested on every OS.
const (
	bsdNoteExit     = 0x80000000 // NOTE_EXIT: data is the wait status
	bsdNoteExec     = 0x20000000 // NOTE_EXEC
	bsdNoteTrackErr = 0x00000002 // NOTE_TRACKERR: a child could not be attached to
	bsdNoteChild    = 0x00000004 // NOTE_CHILD: ident is a new child, data its parent
)

// ParseProcKevent turns one EVFILT_PROC kevent (its ident, fflags and
// data) into process events, in the order they happened: a new child
// (NOTE_CHILD, from the note the kernel attached to it at fork), an exec,
// an exit. trackErr reports NOTE_TRACKERR: the kernel failed to follow a
// child, so events of that child and its descendants are missing.
// NOTE_FORK on the parent adds nothing to the child's own NOTE_CHILD.
func ParseProcKevent(ident uint64, fflags uint32, data int64, fn func(ProcEvent)) (trackErr bool) {
	if ident == 0 || ident > 1<<31-1 {
		return false // not a process id: nothing to report
	}
	pid := int32(ident)
	if fflags&bsdNoteChild != 0 {
		if data > 0 && data <= 1<<31-1 {
			ppid := int32(data)
			fn(ProcEvent{Kind: EventFork, PID: pid, TGID: pid, ParentPID: ppid, ParentTGID: ppid})
		}
		return fflags&bsdNoteTrackErr != 0 // a child note carries nothing else
	}
	if fflags&bsdNoteExec != 0 {
		fn(ProcEvent{Kind: EventExec, PID: pid, TGID: pid})
	}
	if fflags&bsdNoteExit != 0 {
		fn(ProcEvent{Kind: EventExit, PID: pid, TGID: pid, ExitCode: uint32(data)})
	}
	return fflags&bsdNoteTrackErr != 0
}

// procPoll turns successive listings of the process table into fork and
// exit events, where kqueue cannot follow processes: a process seen for
// the first time is a fork of its parent, one no longer listed (or whose
// pid now names a process with another start time) an exit. Processes
// that come and go between two listings are not seen at all.
type procPoll struct {
	known, next map[int32]uint64 // pid → start time
	primed      bool             // the first listing only learns what exists
}

func newProcPoll() *procPoll {
	return &procPoll{known: map[int32]uint64{}, next: map[int32]uint64{}}
}

// seen records one process of the current listing.
func (p *procPoll) seen(pid, ppid int32, start uint64, fn func(ProcEvent)) {
	p.next[pid] = start
	old, ok := p.known[pid]
	if ok && old == start || !p.primed {
		return
	}
	if ok {
		fn(ProcEvent{Kind: EventExit, PID: pid, TGID: pid}) // the pid was reused
	}
	fn(ProcEvent{Kind: EventFork, PID: pid, TGID: pid, ParentPID: ppid, ParentTGID: ppid})
}

// done ends a listing: processes not seen in it exited.
func (p *procPoll) done(fn func(ProcEvent)) {
	for pid := range p.known {
		if _, ok := p.next[pid]; !ok && p.primed {
			fn(ProcEvent{Kind: EventExit, PID: pid, TGID: pid})
		}
	}
	p.known, p.next = p.next, p.known
	clear(p.next)
	p.primed = true
}
