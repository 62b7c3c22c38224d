//go:build freebsd

package platform

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ProcBrief is a process's identity and state from one kern.proc sysctl:
// what the enforcer re-checks right before it acts, and what the
// whole-user helper counts.
type ProcBrief struct {
	ProcID
	PPID    int32
	UID     uint32 // real uid
	EUID    uint32
	State   byte
	Exiting bool // P_WEXIT: on its way out
	Kernel  bool
}

func brief(k *KinfoProc, boot int64) ProcBrief {
	return ProcBrief{
		ProcID: ProcID{PID: k.PID, StartTime: k.StartSinceBoot(boot)},
		PPID:   k.PPID, UID: k.RUID, EUID: k.UID, State: k.State(),
		Exiting: k.Exiting(), Kernel: k.Kernel(),
	}
}

// ReadProcBrief reads one process (kern.proc.pid.PID); ErrGone when there
// is none.
func ReadProcBrief(pid int32) (ProcBrief, error) {
	var buf []byte
	k, boot, err := readKinfo(pid, &buf)
	if err != nil {
		return ProcBrief{}, err
	}
	return brief(&k, boot), nil
}

// ListProcBriefs lists every process (kern.proc.proc), or with byRUID only
// those whose real uid is ruid (kern.proc.ruid.UID).
func ListProcBriefs(byRUID bool, ruid uint32) ([]ProcBrief, error) {
	mib := []int32{ctlKern, kernProc, kernProcProc}
	if byRUID {
		mib = procMIB(kernProcRUID, int32(ruid))
	}
	var buf, small []byte
	boot, err := bootMicros(&small)
	if err != nil {
		return nil, err
	}
	b, err := sysctlRead(mib, &buf)
	if errors.Is(err, unix.ESRCH) {
		return nil, nil // no process of that uid
	}
	if err != nil {
		return nil, fmt.Errorf("sysctl kern.proc: %w", err)
	}
	var out []ProcBrief
	err = ParseKinfoProcs(b, func(k *KinfoProc) {
		// kern.proc.ruid lists threads of a process as one record each
		// unless KERN_PROC_INC_THREAD is asked; keep one per pid anyway.
		if len(out) > 0 && out[len(out)-1].PID == k.PID {
			return
		}
		out = append(out, brief(k, boot))
	})
	return out, err
}

// Executable returns the path of the running executable, from
// kern.proc.pathname of guardd's own pid (what os.Executable reads on
// FreeBSD; there is no /proc/self/exe without procfs).
func Executable() (string, error) {
	var buf []byte
	return readPathname(int32(os.Getpid()), &buf)
}
