package platform

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// EventKind is what happened to a process, as the Linux proc connector
// reports it (include/uapi/linux/cn_proc.h).
type EventKind uint32

// Event kinds guardd uses; others are decoded as EventOther.
const (
	EventOther EventKind = 0
	EventFork  EventKind = 0x1
	EventExec  EventKind = 0x2
	EventUID   EventKind = 0x4
	EventExit  EventKind = 0x80000000
)

func (k EventKind) String() string {
	switch k {
	case EventFork:
		return "fork"
	case EventExec:
		return "exec"
	case EventUID:
		return "uid"
	case EventExit:
		return "exit"
	}
	return "other"
}

// ProcEvent is one process event. PID and TGID name the task it is about
// (for a fork: the child); a task with PID == TGID is a process, any other
// a thread.
type ProcEvent struct {
	Kind       EventKind
	PID, TGID  int32
	ParentPID  int32  // fork: the parent task; exit: the parent (kernels ≥ 4.18)
	ParentTGID int32  // fork, exit
	UID, EUID  uint32 // uid change: the new real and effective uid
	ExitCode   uint32 // exit: wait status
	Nanos      uint64 // kernel timestamp (ktime_get_ns)
}

// IsProcess reports whether the event concerns a whole process (or its
// main thread) rather than another thread.
func (e ProcEvent) IsProcess() bool { return e.PID == e.TGID }

// Sizes of the connector's headers (linux/netlink.h, linux/connector.h,
// linux/cn_proc.h).
const (
	nlmsgHeaderLen   = 16
	cnMsgHeaderLen   = 20
	procEventHeadLen = 16 // what, cpu, timestamp_ns
	cnIdxProc        = 1
	cnValProc        = 1
	nlmsgDone        = 3
	nlmsgError       = 2
	nlmsgOverrun     = 4
)

// ErrEventsLost reports that the kernel dropped events (a full receive
// buffer): counts kept from events must be resynchronised from /proc.
var ErrEventsLost = errors.New("proc connector: events lost")

// ParseConnector decodes one datagram from the proc connector socket and
// calls fn for each process event in it. It never panics on malformed
// input: a truncated message is an error, an unknown event kind is
// reported as EventOther.
func ParseConnector(b []byte, fn func(ProcEvent)) error {
	for len(b) > 0 {
		if len(b) < nlmsgHeaderLen {
			return fmt.Errorf("proc connector: short netlink header (%d bytes)", len(b))
		}
		msgLen := int(binary.NativeEndian.Uint32(b[0:4]))
		msgType := binary.NativeEndian.Uint16(b[4:6])
		if msgLen < nlmsgHeaderLen || msgLen > len(b) {
			return fmt.Errorf("proc connector: bad netlink length %d of %d", msgLen, len(b))
		}
		msg := b[nlmsgHeaderLen:msgLen]
		b = b[min(align4(msgLen), len(b)):] // the last message need not be padded
		switch msgType {
		case nlmsgError, nlmsgOverrun:
			return ErrEventsLost
		case nlmsgDone:
		default:
			continue // not a connector message
		}
		if len(msg) < cnMsgHeaderLen {
			return fmt.Errorf("proc connector: short cn_msg (%d bytes)", len(msg))
		}
		idx := binary.NativeEndian.Uint32(msg[0:4])
		val := binary.NativeEndian.Uint32(msg[4:8])
		dataLen := int(binary.NativeEndian.Uint16(msg[16:18]))
		data := msg[cnMsgHeaderLen:]
		if idx != cnIdxProc || val != cnValProc {
			continue
		}
		if dataLen > len(data) {
			return fmt.Errorf("proc connector: cn_msg claims %d bytes, has %d", dataLen, len(data))
		}
		ev, ok, err := parseProcEvent(data[:dataLen])
		if err != nil {
			return err
		}
		if ok {
			fn(ev)
		}
	}
	return nil
}

func align4(n int) int { return (n + 3) &^ 3 }

func parseProcEvent(d []byte) (ProcEvent, bool, error) {
	if len(d) < procEventHeadLen {
		return ProcEvent{}, false, fmt.Errorf("proc connector: short proc_event (%d bytes)", len(d))
	}
	what := binary.NativeEndian.Uint32(d[0:4])
	ev := ProcEvent{Nanos: binary.NativeEndian.Uint64(d[8:16])}
	u := d[procEventHeadLen:]
	i32 := func(off int) int32 { return int32(binary.NativeEndian.Uint32(u[off : off+4])) }
	u32 := func(off int) uint32 { return binary.NativeEndian.Uint32(u[off : off+4]) }
	need := func(n int) error {
		if len(u) < n {
			return fmt.Errorf("proc connector: %s event of %d bytes, want %d", EventKind(what), len(u), n)
		}
		return nil
	}
	switch EventKind(what) {
	case EventFork:
		if err := need(16); err != nil {
			return ev, false, err
		}
		ev.Kind = EventFork
		ev.ParentPID, ev.ParentTGID, ev.PID, ev.TGID = i32(0), i32(4), i32(8), i32(12)
	case EventExec:
		if err := need(8); err != nil {
			return ev, false, err
		}
		ev.Kind = EventExec
		ev.PID, ev.TGID = i32(0), i32(4)
	case EventUID:
		if err := need(16); err != nil {
			return ev, false, err
		}
		ev.Kind = EventUID
		ev.PID, ev.TGID, ev.UID, ev.EUID = i32(0), i32(4), u32(8), u32(12)
	case EventExit:
		if err := need(16); err != nil {
			return ev, false, err
		}
		ev.Kind = EventExit
		ev.PID, ev.TGID, ev.ExitCode = i32(0), i32(4), u32(8)
		if len(u) >= 24 {
			ev.ParentPID, ev.ParentTGID = i32(16), i32(20)
		}
	case 0: // PROC_EVENT_NONE: the acknowledgement of our subscription
		return ev, false, nil
	default:
		ev.Kind = EventOther
		if len(u) >= 8 {
			ev.PID, ev.TGID = i32(0), i32(4)
		}
	}
	return ev, true, nil
}

// connectorSubscribe is the message that turns the proc connector on for
// a socket: nlmsghdr + cn_msg + PROC_CN_MCAST_LISTEN, and with events
// non-zero, struct proc_input's event mask: since Linux 6.6 the kernel then
// sends the socket only those events (older kernels ignore a message of
// that size, so the caller sends the mask only to a kernel that has it).
func connectorSubscribe(portID uint32, listen bool, events uint32) []byte {
	op := uint32(1) // PROC_CN_MCAST_LISTEN
	if !listen {
		op = 2 // PROC_CN_MCAST_IGNORE
	}
	payload := 4
	if events != 0 {
		payload = 8
	}
	b := make([]byte, nlmsgHeaderLen+cnMsgHeaderLen+payload)
	binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:6], nlmsgDone)
	binary.NativeEndian.PutUint32(b[12:16], portID)
	c := b[nlmsgHeaderLen:]
	binary.NativeEndian.PutUint32(c[0:4], cnIdxProc)
	binary.NativeEndian.PutUint32(c[4:8], cnValProc)
	binary.NativeEndian.PutUint16(c[16:18], uint16(payload))
	binary.NativeEndian.PutUint32(c[20:24], op)
	if events != 0 {
		binary.NativeEndian.PutUint32(c[24:28], events)
	}
	return b
}

// ConnectorEvents are the events guardd needs: forks, execs, uid changes
// and exits (comm events are most of the rest, and unused).
const ConnectorEvents = uint32(EventFork | EventExec | EventUID | EventExit)

// kernelAtLeast reports whether a uname release string ("6.18.44-...") is
// at least major.minor.
func kernelAtLeast(release string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(release, "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}
