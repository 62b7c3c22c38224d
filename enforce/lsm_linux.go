package enforce

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/cilium/ebpf/btf"
)

// The listen hook: a BPF LSM program on socket_listen. listen(2) on a
// socket that was never bound binds it to an ephemeral port inside the
// kernel (inet_listen → inet_autobind) without passing the cgroup bind
// hooks, so a customer held to port 11211 could still serve on port 41873.
// security_socket_listen runs in __sys_listen before inet_listen: the
// program sees port 0 there and refuses unless the allow list covers the
// whole ephemeral range. A socket bound first (to any port, port 0
// included) is judged by the port it holds.
//
// The hook works only where the kernel runs the BPF LSM: CONFIG_BPF_LSM
// and "bpf" in the lsm= list. Attaching succeeds without the latter and
// the program then never runs, so OpenBindHook proves it runs (a listen()
// of its own, counted by the program) before it says listen() is refused.

// sockOffsets are the byte offsets the listen program reads, from the
// running kernel's BTF: struct socket's sk, and struct sock's fields (the
// first ones in its struct sock_common). -1: not found (optional fields).
type sockOffsets struct {
	socketSK             int16
	family, num          int16
	rcvSaddr, v6RcvSaddr int16
	skType, skProtocol   int16
}

var (
	kernelOffsetsOnce sync.Once
	kernelOffsets     *sockOffsets
	kernelOffsetsErr  error
)

// kernelSockOffsets reads the offsets once from /sys/kernel/btf/vmlinux.
func kernelSockOffsets() (*sockOffsets, error) {
	kernelOffsetsOnce.Do(func() {
		spec, err := btf.LoadKernelSpec()
		if err != nil {
			kernelOffsetsErr = fmt.Errorf("kernel BTF: %w", err)
			return
		}
		kernelOffsets, kernelOffsetsErr = findSockOffsets(spec)
	})
	return kernelOffsets, kernelOffsetsErr
}

func findSockOffsets(spec *btf.Spec) (*sockOffsets, error) {
	var socket, sock *btf.Struct
	if err := spec.TypeByName("socket", &socket); err != nil {
		return nil, fmt.Errorf("kernel BTF: struct socket: %w", err)
	}
	if err := spec.TypeByName("sock", &sock); err != nil {
		return nil, fmt.Errorf("kernel BTF: struct sock: %w", err)
	}
	o := &sockOffsets{skType: -1, skProtocol: -1}
	var err error
	field := func(s *btf.Struct, name string, size uint32, optional bool) int16 {
		off, got, ferr := memberOffset(s, name)
		if ferr == nil && got != size {
			ferr = fmt.Errorf("%s.%s is %d bytes, want %d", s.Name, name, got, size)
		}
		if ferr != nil {
			if !optional && err == nil {
				err = fmt.Errorf("kernel BTF: %w", ferr)
			}
			return -1
		}
		return off
	}
	o.socketSK = field(socket, "sk", 8, false)
	o.family = field(sock, "skc_family", 2, false)
	o.num = field(sock, "skc_num", 2, false)
	o.rcvSaddr = field(sock, "skc_rcv_saddr", 4, false)
	o.v6RcvSaddr = field(sock, "skc_v6_rcv_saddr", 16, false)
	// Only for the audit line (tcp or mptcp): optional.
	o.skType = field(sock, "sk_type", 2, true)
	o.skProtocol = field(sock, "sk_protocol", 2, true)
	if err != nil {
		return nil, err
	}
	return o, nil
}

// memberOffset finds a member by name in s, descending into embedded
// structs (struct sock's __sk_common) and anonymous unions, and returns
// its byte offset and size. Bitfields are refused: the program loads whole
// bytes.
func memberOffset(s *btf.Struct, name string) (int16, uint32, error) {
	var walk func(members []btf.Member, base uint32, depth int) (int16, uint32, bool, error)
	walk = func(members []btf.Member, base uint32, depth int) (int16, uint32, bool, error) {
		if depth > 8 {
			return 0, 0, false, nil
		}
		for _, m := range members {
			at := base + uint32(m.Offset)
			t := btf.UnderlyingType(m.Type)
			if m.Name == name {
				if m.BitfieldSize != 0 || at%8 != 0 {
					return 0, 0, true, fmt.Errorf("%s.%s is a bitfield", s.Name, name)
				}
				size, err := btf.Sizeof(t)
				if err != nil {
					return 0, 0, true, fmt.Errorf("%s.%s: %w", s.Name, name, err)
				}
				if at/8 > 1<<15-1 {
					return 0, 0, true, fmt.Errorf("%s.%s at byte %d: too far", s.Name, name, at/8)
				}
				return int16(at / 8), uint32(size), true, nil
			}
			var inner []btf.Member
			switch c := t.(type) {
			case *btf.Struct:
				// Anonymous members and the embedded sock_common.
				if m.Name == "" || m.Name == "__sk_common" {
					inner = c.Members
				}
			case *btf.Union:
				if m.Name == "" {
					inner = c.Members
				}
			}
			if inner != nil {
				if off, size, ok, err := walk(inner, at, depth+1); ok || err != nil {
					return off, size, ok, err
				}
			}
		}
		return 0, 0, false, nil
	}
	off, size, ok, err := walk(s.Members, 0, 0)
	if err != nil {
		return 0, 0, err
	}
	if !ok {
		return 0, 0, fmt.Errorf("struct %s has no member %s", s.Name, name)
	}
	return off, size, nil
}

// errNoBPFLSM says the kernel does not run BPF LSM programs.
var errNoBPFLSM = errors.New("the kernel does not run BPF LSM programs here")

// lsmActive reads the active LSMs where securityfs is mounted; ok is false
// when it cannot tell (then only the self-test does).
func lsmActive() (active, ok bool) {
	b, err := os.ReadFile("/sys/kernel/security/lsm")
	if err != nil {
		return false, false
	}
	for _, name := range strings.Split(strings.TrimSpace(string(b)), ",") {
		if name == "bpf" {
			return true, true
		}
	}
	return false, true
}
