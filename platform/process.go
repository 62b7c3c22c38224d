// Package platform observes the host: processes, users and host-wide facts.
// It holds OS facts only, no policy, and imports nothing else of guardd's.
// Per-OS code lives in files with an OS suffix; parsers of kernel text are
// pure functions over []byte without build tags, so they are tested and
// fuzzed on every OS.
package platform

import (
	"errors"
	"fmt"
	"time"
)

// ErrUnsupported is returned by observers that this OS does not provide.
var ErrUnsupported = errors.New("not supported on this platform")

// ErrGone reports that a process exited (or its pid now names another
// process). Processes vanish between any two reads; callers treat this as
// normal, not as a failure.
var ErrGone = errors.New("process gone")

// ProcID identifies one process over its lifetime: a pid alone is reused by
// the kernel, a pid with its start time is not (within one boot).
type ProcID struct {
	PID       int32
	StartTime uint64 // clock ticks since boot (Linux /proc/PID/stat field 22); FreeBSD: microseconds since boot (ki_start − kern.boottime)
}

func (id ProcID) String() string { return fmt.Sprintf("%d@%d", id.PID, id.StartTime) }

// Process is one observed process. Fields marked "static" are read once per
// process lifetime (and again when the process execs); the others every tick.
type Process struct {
	ProcID
	PPID  int32
	UID   uint32 // real uid, from /proc/PID/status (not file ownership)
	EUID  uint32 // effective uid
	GID   uint32 // real gid
	User  string // name of UID, or its decimal form when it has no name
	State byte   // R, S, D, Z, T, t, X, I ...
	Comm  string // kernel command name (untrusted: the process chooses it)

	Exe        string // static: /proc/PID/exe target without " (deleted)"; "" for kernel threads or when unreadable
	ExeDeleted bool   // static: the executable was deleted or replaced after exec
	Cmdline    string // static: argv joined by spaces, truncated to MaxCmdline bytes

	CPUTime    time.Duration // utime+stime over the process lifetime
	CPUPercent float64       // CPU use since the previous sample; 100 = one core; 0 on first sight
	RSSBytes   uint64        // resident set size in bytes
	Threads    int32         // number of threads
	Nice       int32         // nice value of the main thread, -20..19
	FDs        int32         // open descriptors, counted every FDInterval; -1 when not yet counted
	Children   int32         // child processes in this sample (zombies included)
	Zombies    int32         // zombie children: exited, not yet reaped by this process
	Started    time.Time     // wall clock start time
	Age        time.Duration // time since start, at the sample

	Kernel bool // a kernel thread (no mm, no exe)

	// LeaderExited: the main thread exited (pthread_exit) while other
	// threads run. The kernel then shows the leader as a zombie with no
	// exe, command line or descriptors; State, Exe, Cmdline and FDs are
	// read from a live thread instead, and the process is alive.
	LeaderExited bool
	// FDTables is how many distinct descriptor tables the threads have: 1,
	// or more where a thread unshared its table (unshare(CLONE_FILES)).
	// FDs counts the descriptors of all of them. 0 until counted.
	FDTables int32

	// Parent is the process PPID names, in the same sample (or read along
	// with this one by ReadProcess, for inspected processes); nil when
	// there is none or it is not known.
	Parent *Process
	// Inspection is what else runs in the process, for one whose
	// executable the inspector watches (SetExeInspector); read at exec and
	// again every 30 s. nil when not inspected. (A pointer: most processes
	// have none, and there are tens of thousands.)
	Inspection *Inspection

	// WaitChannel names what a sleeping process waits for, where the
	// sampler reads it at no cost: FreeBSD's wait message (ki_wmesg:
	// "select", "nanslp", "lockf" for an advisory lock request …). ""
	// when running, and always on Linux.
	WaitChannel string

	// Ports this process listens on: TCP listeners and bound, unconnected
	// UDP sockets among its descriptors, sorted, without duplicates. Filled
	// by the listener observer (not the sampler), and only for processes
	// whose ports the policy needs; nil otherwise.
	ListenPorts []uint16

	// Listening sockets this process holds that the listen blocks
	// governing its user do not allow, and the block that acts on them
	// (filled by the listeners capability, not the sampler).
	ForbiddenListens     int
	ForbiddenListenBlock string

	// File locks, from /proc/locks (filled by LockObserver, not the sampler).
	LocksHeld       int32         // lock records this process holds
	LockWait        time.Duration // how long it has been blocked on a lock (as observed); 0 when not waiting
	LockBlocking    int32         // processes waiting on locks this one holds
	LockBlockingFor time.Duration // the longest of those waits
	// Of those waiters, the ones of other uids: a customer whose lock keeps
	// other customers waiting.
	LockBlockingOthers    int32         // processes of other uids waiting on locks this one holds
	LockBlockingOthersFor time.Duration // the longest of their waits
	// Locks this process holds on files another uid owns while processes
	// wait on them: flock(2) needs only a read-only descriptor, so anyone
	// who can read a file can lock it against its owner. The owner is
	// looked up only for locks someone waits on.
	LockForeign    int32         // such locks
	LockForeignFor time.Duration // the longest wait on them
}

// Inspection is what a process maps and is told to load besides its
// executable.
type Inspection struct {
	Libraries []MappedFile // mapped files other than Exe, each path once
	LoaderEnv []string     // LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT of its environment, "NAME=value"
}

// MaxCmdline bounds the command line kept per process: memory stays bounded
// with 30,000 processes, and evidence rarely needs more.
const MaxCmdline = 512

// UserStats aggregates the processes of one real uid in one sample.
type UserStats struct {
	UID        uint32
	Name       string
	Groups     []string // primary and supplementary group names
	Procs      int32
	Zombies    int32
	CPUPercent float64 // sum over the user's processes; 100 = one core
	RSSBytes   uint64
	FDs        int64 // sum of counted descriptors (processes not yet counted add 0)

	Listeners int32 // listening sockets the uid owns (TCP listen, bound unconnected UDP), from the listener observer

	// ForksPerSec is the user's new processes over the last second, from
	// process events (the fork-storm observer); 0 without them: the
	// sampler alone cannot see processes that came and went between two
	// samples.
	ForksPerSec float64

	LockWaiters int32 // processes of the user blocked on a file lock

	// Inodes in the configured trees (filled by the inode counter, not the
	// sampler; 0 until first counted). A user with files there but no
	// process gets a UserStats with Procs 0.
	Inodes            int64
	InodeGrowthPerMin float64 // net inodes created per minute, recent

	// Group is the customer's own kernel group, where per-customer
	// isolation runs (filled by the isolation capability).
	Group UserGroupUsage

	// Traffic of the sockets the uid owns over the last tick, IP bytes
	// per second (filled by the traffic capability; 0 where its kernel
	// hook does not run).
	TxBytesPerSec float64
	RxBytesPerSec float64
	// Connections are the uid's established TCP sockets (IPv4 and IPv6).
	Connections int32
	// ConnectRefusals are the connects (and UDP sends) the connect hook
	// refused the uid, or in monitor mode would have, over the last tick.
	ConnectRefusals int64
}

// Host holds host-wide facts from one sample.
type Host struct {
	Hostname         string
	Load1            float64
	Load5            float64
	Load15           float64
	NCPU             int
	Procs            int
	FilesOpen        uint64  // allocated file handles (fs.file-nr)
	FilesMax         uint64  // fs.file-max
	FilesOpenPercent float64 // FilesOpen / FilesMax * 100
}

// Snapshot is one sampling tick. A Sampler reuses the memory behind it: it
// is valid until the next call to Sample, and callers must copy what they
// keep.
type Snapshot struct {
	Time     time.Time     // wall clock of the sample
	Interval time.Duration // wall time since the previous sample; 0 on the first
	Procs    []*Process
	Users    map[uint32]*UserStats
	Host     Host

	Filesystems []Filesystem // mounted local filesystems (filled by the filesystem observer)
}
