//go:build freebsd

package platform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Numbers of the kern.proc sysctls (sys/sys/sysctl.h): fixed ABI, so the
// per-process ones need no name lookup.
const (
	ctlKern          = 1  // CTL_KERN
	kernProc         = 14 // KERN_PROC
	kernProcPID      = 1  // KERN_PROC_PID
	kernProcRUID     = 6  // KERN_PROC_RUID
	kernProcArgs     = 7  // KERN_PROC_ARGS
	kernProcProc     = 8  // KERN_PROC_PROC: one record per process, not per thread
	kernProcPathname = 12 // KERN_PROC_PATHNAME
	kernProcFiledesc = 33 // KERN_PROC_FILEDESC
)

// sysctlRead reads the sysctl mib into *buf, growing it as needed, and
// returns the bytes read. Tables such as kern.proc.proc grow between the
// size probe and the read (ENOMEM): it probes again with room to spare.
// It does not allocate when *buf is large enough, unlike unix.SysctlRaw,
// which the sampler would otherwise call for megabytes every tick.
func sysctlRead(mib []int32, buf *[]byte) ([]byte, error) {
	if len(*buf) == 0 {
		*buf = make([]byte, 4096) // a nil buffer would make the call a size probe
	}
	for try := 0; ; try++ {
		n := uintptr(len(*buf))
		err := sysctlCall(mib, &(*buf)[0], &n)
		if err == nil {
			return (*buf)[:n], nil
		}
		if !errors.Is(err, unix.ENOMEM) || try == 8 {
			return nil, err
		}
		// Too small: ask for the size, then leave room for growth.
		n = 0
		if err := sysctlCall(mib, nil, &n); err != nil {
			return nil, err
		}
		*buf = make([]byte, n+n/4+4096)
	}
}

func sysctlCall(mib []int32, old *byte, oldlen *uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS___SYSCTL, uintptr(unsafe.Pointer(&mib[0])), uintptr(len(mib)),
		uintptr(unsafe.Pointer(old)), uintptr(unsafe.Pointer(oldlen)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// sysctlMIBs caches name → number translations: names such as
// net.inet.tcp.pcblist have numbers assigned at boot (OID_AUTO).
var sysctlMIBs sync.Map // string → []int32

// sysctlMIB translates a sysctl name to its numbers (the {0, 3} "name2oid"
// sysctl, as sysctlnametomib(3) does).
func sysctlMIB(name string) ([]int32, error) {
	if m, ok := sysctlMIBs.Load(name); ok {
		return m.([]int32), nil
	}
	var out [24]int32 // CTL_MAXNAME
	n := uintptr(len(out)) * 4
	nb := []byte(name)
	name2oid := [2]int32{0, 3}
	_, _, e := unix.Syscall6(unix.SYS___SYSCTL, uintptr(unsafe.Pointer(&name2oid[0])), 2,
		uintptr(unsafe.Pointer(&out[0])), uintptr(unsafe.Pointer(&n)),
		uintptr(unsafe.Pointer(&nb[0])), uintptr(len(nb)))
	if e != 0 {
		return nil, fmt.Errorf("sysctl %s: %w", name, e)
	}
	m := append([]int32(nil), out[:n/4]...)
	sysctlMIBs.Store(name, m)
	return m, nil
}

// sysctlByName reads a sysctl by name into *buf.
func sysctlByName(name string, buf *[]byte) ([]byte, error) {
	mib, err := sysctlMIB(name)
	if err != nil {
		return nil, err
	}
	b, err := sysctlRead(mib, buf)
	if err != nil {
		return nil, fmt.Errorf("sysctl %s: %w", name, err)
	}
	return b, nil
}

// sysctlInt reads an int sysctl (4 bytes; 8 for a long).
func sysctlInt(name string) (int64, error) {
	b, err := unix.SysctlRaw(name)
	if err != nil {
		return 0, fmt.Errorf("sysctl %s: %w", name, err)
	}
	switch len(b) {
	case 4:
		return int64(int32(binary.LittleEndian.Uint32(b))), nil
	case 8:
		return int64(binary.LittleEndian.Uint64(b)), nil
	}
	return 0, fmt.Errorf("sysctl %s: %d bytes, want an int", name, len(b))
}

// bootMicros reads kern.boottime in microseconds since the epoch.
func bootMicros(buf *[]byte) (int64, error) {
	b, err := sysctlByName("kern.boottime", buf)
	if err != nil {
		return 0, err
	}
	return ParseTimeval(b)
}

// procMIB is the mib of a per-process kern.proc sysctl.
func procMIB(op int32, arg int32) []int32 { return []int32{ctlKern, kernProc, op, arg} }
