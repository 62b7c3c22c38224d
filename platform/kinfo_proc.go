package platform

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// FreeBSD's process table comes from the kern.proc.* sysctls as arrays of
// struct kinfo_proc (sys/sys/user.h). golang.org/x/sys has no type for
// it, so guardd decodes the bytes itself. The decoder has no build tag: it
// is tested and fuzzed on every OS, on fixtures built from the C layout
// (testdata/freebsd/README.md).
//
// The layout below is struct kinfo_proc of FreeBSD 13 and 14 on the LP64
// platforms (amd64, arm64: pointers, long, segsz_t, vm_size_t and
// time_t are 8 bytes; both are little-endian). KINFO_PROC_SIZE is 1088
// there, on both releases: fields were added by taking room from the
// ki_spare* arrays, so the size (ki_structsize) and the offsets guardd
// reads did not move between them. A record whose ki_structsize is not
// 1088 (i386's 768, the 816 of 32-bit arm and powerpc, or a future
// release that grew the struct) is refused, never guessed at.
//
// Offsets, counted from the header's declarations (every field before
// them, with C alignment), and cross-checked in kinfo_proc_test.go
// against a field-by-field Go transliteration of the header whose size
// must come out at KINFO_PROC_SIZE:
//
//	ki_structsize   int          0
//	ki_pid          pid_t       72   after ki_structsize, ki_layout, 8 pointers
//	ki_ppid         pid_t       76
//	ki_uid          uid_t      168   effective uid
//	ki_ruid         uid_t      172   real uid
//	ki_rgid         gid_t      180
//	ki_rssize       segsz_t    264   pages
//	ki_runtime      uint64_t   328   microseconds of CPU (user + system)
//	ki_start        timeval    336   p_start + boottime: wall clock
//	ki_flag         long       368   P_* flags
//	ki_stat         char       388   SIDL … SLOCK
//	ki_nice         signed char 389
//	ki_wmesg        char[9]    411   what a sleeping thread waits for
//	ki_comm         char[20]   447   COMMLEN+1
//	ki_numthreads   int        596
//	ki_tdflags      long      1080   TDF_* flags of the thread shown
const (
	KinfoProcSize = 1088 // KINFO_PROC_SIZE on amd64 and arm64

	kiStructsize = 0
	kiPID        = 72
	kiPPID       = 76
	kiUID        = 168
	kiRUID       = 172
	kiRGID       = 180
	kiRSSize     = 264
	kiRuntime    = 328
	kiStart      = 336
	kiFlag       = 368
	kiStat       = 388
	kiNice       = 389
	kiWmesg      = 411
	kiWmesgLen   = 9 // WMESGLEN+1
	kiComm       = 447
	kiCommLen    = 20 // COMMLEN+1
	kiNumThreads = 596
	kiTDFlags    = 1080
)

// Process states (ki_stat, sys/sys/proc.h) and flags guardd reads.
const (
	bsdSIDL   = 1 // being created by fork
	bsdSRUN   = 2 // runnable
	bsdSSLEEP = 3 // sleeping on an address
	bsdSSTOP  = 4 // stopped
	bsdSZOMB  = 5 // awaiting collection by the parent
	bsdSWAIT  = 6 // waiting for an interrupt (interrupt threads)
	bsdSLOCK  = 7 // blocked on a lock

	bsdPKproc  = 0x00004 // P_KPROC: a kernel process
	bsdPSystem = 0x00200 // P_SYSTEM: a system process (no signals, no swap)
	bsdPWexit  = 0x02000 // P_WEXIT: exiting

	bsdTDFSintr = 0x00000008 // TDF_SINTR: the sleep can be interrupted by a signal
)

// lockfWmesg is the wait message of a thread blocked in an advisory lock
// request (fcntl F_SETLKW and flock(2) alike): kern_lockf.c sleeps on
// lockstr[] = "lockf".
const lockfWmesg = "lockf"

// KinfoProc is what guardd reads of one struct kinfo_proc. Comm and Wmesg
// point into the decoded buffer: copy them to keep them.
type KinfoProc struct {
	PID, PPID     int32
	UID           uint32 // effective uid (ki_uid)
	RUID          uint32 // real uid (ki_ruid)
	RGID          uint32 // real gid
	RSSPages      int64  // resident set size, pages
	RuntimeMicros uint64 // CPU time, user and system, microseconds
	StartMicros   int64  // start time, wall clock, microseconds since the epoch (boottime + p_start)
	Flag          int64  // P_* flags
	Stat          uint8  // SIDL … SLOCK
	Nice          int8
	Threads       int32
	TDFlags       int64 // TDF_* flags of the thread the record shows
	Comm          []byte
	Wmesg         []byte
}

// State maps ki_stat to the letters guardd uses everywhere (Linux's, as
// ps(1) prints them on both): R runnable, S interruptible sleep, D
// uninterruptible sleep, T stopped, Z zombie, W interrupt wait, L lock
// wait. ps(1) prints I for a process asleep over 20 seconds; guardd says
// S, since on Linux I means an idle kernel thread.
func (k *KinfoProc) State() byte {
	switch k.Stat {
	case bsdSRUN, bsdSIDL:
		return 'R'
	case bsdSSLEEP:
		if k.TDFlags&bsdTDFSintr != 0 {
			return 'S'
		}
		return 'D'
	case bsdSSTOP:
		return 'T'
	case bsdSZOMB:
		return 'Z'
	case bsdSWAIT:
		return 'W'
	case bsdSLOCK:
		return 'L'
	}
	return '?'
}

// Kernel reports a kernel or system process (P_KPROC, P_SYSTEM): never
// signalled, never acted on.
func (k *KinfoProc) Kernel() bool { return k.Flag&(bsdPKproc|bsdPSystem) != 0 }

// Exiting reports a process that has begun to exit (P_WEXIT).
func (k *KinfoProc) Exiting() bool { return k.Flag&bsdPWexit != 0 }

// LockfWait reports a process asleep in an advisory lock request.
func (k *KinfoProc) LockfWait() bool {
	return k.Stat == bsdSSLEEP && string(k.Wmesg) == lockfWmesg
}

// CPUTime is ki_runtime as a duration.
func (k *KinfoProc) CPUTime() time.Duration {
	return time.Duration(min(k.RuntimeMicros, uint64(1<<63-1)/1000)) * time.Microsecond
}

// StartSinceBoot is the process's start time relative to boot, in
// microseconds: ki_start minus kern.boottime, both in microseconds. The
// kernel computes ki_start as p_start (uptime at fork) plus boottime, so
// the difference is p_start itself and does not move when the wall clock
// is stepped (which moves boottime and ki_start alike). It is guardd's
// ProcID.StartTime on FreeBSD. 0 when the record has no start time.
func (k *KinfoProc) StartSinceBoot(bootMicros int64) uint64 {
	if k.StartMicros <= 0 || k.StartMicros < bootMicros {
		return 0
	}
	return uint64(k.StartMicros - bootMicros)
}

// ParseKinfoProcs decodes an array of struct kinfo_proc (kern.proc.proc,
// kern.proc.pid.PID, kern.proc.ruid.UID) and calls fn for each record;
// the KinfoProc passed is reused, copy what you keep. It refuses a record
// of any other size than KinfoProcSize (an unknown layout), a truncated
// one, and one whose fields cannot be right (negative pid, comm without
// its NUL), with an error naming the record; it never panics.
func ParseKinfoProcs(b []byte, fn func(*KinfoProc)) error {
	var k KinfoProc
	for i := 0; len(b) > 0; i++ {
		if len(b) < 4 {
			return fmt.Errorf("kinfo_proc %d: %d trailing bytes", i, len(b))
		}
		size := int32(binary.LittleEndian.Uint32(b[kiStructsize:]))
		if size != KinfoProcSize {
			return fmt.Errorf("kinfo_proc %d: ki_structsize %d: unknown layout (guardd knows %d, FreeBSD 13 and 14 on amd64 and arm64)", i, size, KinfoProcSize)
		}
		if len(b) < KinfoProcSize {
			return fmt.Errorf("kinfo_proc %d: truncated (%d of %d bytes)", i, len(b), KinfoProcSize)
		}
		if err := decodeKinfoProc(b[:KinfoProcSize], &k); err != nil {
			return fmt.Errorf("kinfo_proc %d: %w", i, err)
		}
		fn(&k)
		b = b[KinfoProcSize:]
	}
	return nil
}

func decodeKinfoProc(r []byte, k *KinfoProc) error {
	le := binary.LittleEndian
	k.PID = int32(le.Uint32(r[kiPID:]))
	k.PPID = int32(le.Uint32(r[kiPPID:]))
	if k.PID < 0 || k.PPID < 0 {
		return fmt.Errorf("pid %d, ppid %d", k.PID, k.PPID)
	}
	k.UID = le.Uint32(r[kiUID:])
	k.RUID = le.Uint32(r[kiRUID:])
	k.RGID = le.Uint32(r[kiRGID:])
	k.RSSPages = max(int64(le.Uint64(r[kiRSSize:])), 0)
	k.RuntimeMicros = le.Uint64(r[kiRuntime:])
	sec, usec := int64(le.Uint64(r[kiStart:])), int64(le.Uint64(r[kiStart+8:]))
	switch {
	case sec == 0 && usec == 0:
		k.StartMicros = 0 // no start time (the kernel leaves it zero for some system processes)
	case sec < 0 || usec < 0 || usec >= 1e6 || sec > maxTimevalSec:
		return fmt.Errorf("pid %d: start time %d.%06d", k.PID, sec, usec)
	default:
		k.StartMicros = sec*1e6 + usec
	}
	k.Flag = int64(le.Uint64(r[kiFlag:]))
	k.Stat = r[kiStat]
	k.Nice = int8(r[kiNice])
	k.Threads = max(int32(le.Uint32(r[kiNumThreads:])), 0)
	k.TDFlags = int64(le.Uint64(r[kiTDFlags:]))
	var ok bool
	if k.Comm, ok = cString(r[kiComm : kiComm+kiCommLen]); !ok {
		return fmt.Errorf("pid %d: ki_comm without its NUL", k.PID)
	}
	if k.Wmesg, ok = cString(r[kiWmesg : kiWmesg+kiWmesgLen]); !ok {
		return fmt.Errorf("pid %d: ki_wmesg without its NUL", k.PID)
	}
	return nil
}

// cString returns the bytes of a fixed-size C string field before its
// NUL; ok is false when the field has none.
func cString(field []byte) (s []byte, ok bool) {
	i := bytes.IndexByte(field, 0)
	if i < 0 {
		return field, false
	}
	return field[:i], true
}

// maxTimevalSec bounds the seconds of a timeval guardd accepts, so that
// microseconds fit an int64.
const maxTimevalSec = (1 << 62) / 1_000_000

// ParseTimeval decodes a struct timeval (kern.boottime) on an LP64
// FreeBSD: time_t and suseconds_t of 8 bytes each. It returns
// microseconds since the epoch.
func ParseTimeval(b []byte) (int64, error) {
	if len(b) != 16 {
		return 0, fmt.Errorf("timeval of %d bytes, want 16", len(b))
	}
	sec, usec := int64(binary.LittleEndian.Uint64(b)), int64(binary.LittleEndian.Uint64(b[8:]))
	if sec < 0 || usec < 0 || usec >= 1e6 || sec > maxTimevalSec {
		return 0, fmt.Errorf("timeval %d.%06d out of range", sec, usec)
	}
	return sec*1e6 + usec, nil
}

// ParseBSDLoadavg decodes vm.loadavg, struct loadavg (sys/sys/resource.h):
// fixpt_t ldavg[3] (uint32 each), then long fscale, 24 bytes on LP64.
func ParseBSDLoadavg(b []byte) (LoadAvg, error) {
	if len(b) != 24 {
		return LoadAvg{}, fmt.Errorf("vm.loadavg of %d bytes, want 24", len(b))
	}
	le := binary.LittleEndian
	scale := int64(le.Uint64(b[16:]))
	if scale <= 0 {
		return LoadAvg{}, fmt.Errorf("vm.loadavg: fscale %d", scale)
	}
	f := float64(scale)
	return LoadAvg{
		Load1:  float64(le.Uint32(b[0:])) / f,
		Load5:  float64(le.Uint32(b[4:])) / f,
		Load15: float64(le.Uint32(b[8:])) / f,
	}, nil
}

// CountKinfoFiles counts the open descriptors in kern.proc.filedesc.PID:
// packed struct kinfo_file records (sys/sys/user.h), each starting with
// int kf_structsize, int kf_type, int kf_fd. Entries for the working
// directory, root, jail root, text and tty have a negative kf_fd (KF_FD_TYPE_*)
// and are not descriptors.
func CountKinfoFiles(b []byte) (int, error) {
	const header = 12
	n := 0
	for i := 0; len(b) > 0; i++ {
		if len(b) < header {
			return 0, fmt.Errorf("kinfo_file %d: %d trailing bytes", i, len(b))
		}
		size := int(int32(binary.LittleEndian.Uint32(b)))
		if size < header || size > len(b) {
			return 0, fmt.Errorf("kinfo_file %d: kf_structsize %d of %d bytes left", i, size, len(b))
		}
		if int32(binary.LittleEndian.Uint32(b[8:])) >= 0 {
			n++
		}
		b = b[size:]
	}
	return n, nil
}
