package policy

import (
	"fmt"
	"strings"

	"github.com/guardd/guardd/platform"
)

// Protection by executable, decided by where a process came from and
// what runs in it, not by the path alone: any customer can run
// /usr/sbin/sshd or sftp-server, or LD_PRELOAD code into it.
//
// A process is protected by `exes` when it runs a protected executable
// and, where the platform inspected it (Process.Inspection: Linux, with
// guardd's inspector watching the protected executables):
//
//  1. its parent is either a root process (real and effective uid 0, not
//     pid 1) that runs a protected executable itself (a service's master:
//     sshd, dovecot), or a process protected by this same rule (an sftp-
//     server under the customer's sshd session); an orphan, re-parented
//     to pid 1 or to a subreaper, is no longer protected; and
//  2. nothing it maps or is told to load is customer code: no mapped file
//     under /tmp, /var/tmp, /dev/shm, /home or /run/user, none owned by
//     the process's own uid or by any uid at or above min_uid, no memfd
//     code, and no LD_PRELOAD / LD_LIBRARY_PATH / LD_AUDIT entry that is
//     relative or in those places.
//
// A customer's exec of a protected binary has the customer's shell for
// parent, so it fails (1); code injected into a real service's process
// fails (2). The parent chain is followed at most maxProvenance levels.

// maxProvenance bounds the parent chain followed.
const maxProvenance = 8

// customerDirs are where customers can write, whatever the owner of the
// file there.
var customerDirs = []string{"/tmp/", "/var/tmp/", "/dev/shm/", "/home/", "/run/user/", "/memfd:"}

// MatchExe reports whether exe is one of the protected executables. It is
// what guardd passes to platform.SetExeInspector.
func (pr *Protect) MatchExe(exe string) bool { return pr.matchExe(exe) != nil }

func (pr *Protect) matchExe(exe string) *Glob {
	if exe == "" {
		return nil
	}
	for i := range pr.Exes {
		if pr.Exes[i].Match(exe) {
			return &pr.Exes[i]
		}
	}
	return nil
}

// Reasons a process that runs a protected executable is not protected.
const (
	lostNone       = iota
	lostNoParent   // parent unknown
	lostInitParent // parent is pid 1
	lostRootParent // parent is root but runs no protected executable
	lostUserParent // parent is not root and not protected
	lostTooDeep    // chain longer than maxProvenance
	lostLibrary    // maps a customer's file
	lostLoaderEnv  // loader variable points at customer code
)

// exeVerdict is why a process running a protected executable is or is
// not protected; it is built without allocating (Evaluate asks it for
// every such process on every tick), and worded only when asked.
type exeVerdict struct {
	glob   *Glob             // the protected executable it runs; nil when none
	lost   int               // lostNone when protected
	by     *platform.Process // the parent that protects it, or the process the reason is about
	detail string            // the library or loader variable
}

// exeProtection judges proc's executable (see the top of this file).
func (p *Policy) exeProtection(proc *platform.Process) exeVerdict {
	g := p.Protect.matchExe(proc.Exe)
	if g == nil {
		return exeVerdict{}
	}
	if proc.Inspection == nil {
		// The platform cannot tell where it came from: the path alone.
		return exeVerdict{glob: g}
	}
	return p.provenance(proc, g, 0)
}

func (p *Policy) provenance(proc *platform.Process, g *Glob, depth int) exeVerdict {
	v := exeVerdict{glob: g, by: proc}
	if lib, ok := p.customerCode(proc); ok {
		v.lost, v.detail = lostLibrary, lib
		if strings.HasPrefix(lib, "LD_") {
			v.lost = lostLoaderEnv
		}
		return v
	}
	parent := proc.Parent
	switch {
	case parent == nil || parent.PID != proc.PPID:
		v.lost = lostNoParent
	case parent.PID == 1:
		v.lost, v.by = lostInitParent, parent
	case parent.UID == 0 && parent.EUID == 0:
		v.by = parent
		if p.Protect.matchExe(parent.Exe) == nil {
			v.lost = lostRootParent
		}
	case depth >= maxProvenance:
		v.lost, v.by = lostTooDeep, parent
	default:
		v.by = parent
		pg := p.Protect.matchExe(parent.Exe)
		if pg == nil || parent.Inspection == nil || p.provenance(parent, pg, depth+1).lost != lostNone {
			v.lost = lostUserParent
		}
	}
	return v
}

// customerCode returns the first mapped file or loader variable of proc
// that is a customer's.
func (p *Policy) customerCode(proc *platform.Process) (string, bool) {
	in := proc.Inspection
	for i := range in.Libraries {
		l := &in.Libraries[i]
		if inCustomerDir(l.Path) || l.Owner >= 0 && (uint32(l.Owner) == proc.UID || uint32(l.Owner) >= p.MinUID) {
			return l.Path, true
		}
	}
	for _, kv := range in.LoaderEnv {
		name, val, _ := strings.Cut(kv, "=")
		for _, e := range strings.FieldsFunc(val, func(r rune) bool { return r == ':' || r == ' ' || r == ';' }) {
			if e == "" || e[0] != '/' || inCustomerDir(e) {
				return name + "=" + e, true
			}
		}
		if strings.Contains(val, "::") || strings.HasPrefix(val, ":") || strings.HasSuffix(val, ":") {
			return name + " with an empty entry (the working directory)", true
		}
	}
	return "", false
}

func inCustomerDir(path string) bool {
	for _, d := range customerDirs {
		if strings.HasPrefix(path, d) {
			return true
		}
	}
	return false
}

// protected reports whether the verdict protects the process.
func (v exeVerdict) protected() bool { return v.glob != nil && v.lost == lostNone }

// protects words a verdict that protects.
func (v exeVerdict) protects() string {
	if v.by == nil || v.by.PID == 0 {
		return "protected executable " + v.glob.Pattern
	}
	kind := "protected process"
	if v.by.UID == 0 {
		kind = "root process"
	}
	return fmt.Sprintf("protected executable %s, started by %s %d (%q)", v.glob.Pattern, kind, v.by.PID, v.by.Exe)
}

// String words a verdict that does not protect.
func (v exeVerdict) String() string {
	head := "runs protected executable " + v.glob.Pattern + " but is not protected: "
	by := func() string {
		if v.by == nil {
			return "?"
		}
		return fmt.Sprintf("%d (%q, uid %d)", v.by.PID, v.by.Exe, v.by.UID)
	}
	switch v.lost {
	case lostNoParent:
		return head + "its parent is not known"
	case lostInitParent:
		return head + "its parent is pid 1 (an orphan, or started by init), not a protected service"
	case lostRootParent:
		return head + "its parent, root process " + by() + ", runs no protected executable"
	case lostUserParent:
		return head + "its parent " + by() + " is not a root service running a protected executable, nor protected itself"
	case lostTooDeep:
		return head + fmt.Sprintf("no protected root service within %d parents", maxProvenance)
	case lostLibrary:
		return head + fmt.Sprintf("it maps %q, customer code (a customer-writable place or owner)", v.detail)
	case lostLoaderEnv:
		return head + fmt.Sprintf("its environment loads customer code: %q", v.detail)
	}
	return ""
}

// ExeUnprotected says why a process that runs a protected executable is
// not protected by it, or "" when it is protected or runs none: for
// `guardd explain`.
func (p *Policy) ExeUnprotected(proc *platform.Process) string {
	if v := p.exeProtection(proc); v.glob != nil && v.lost != lostNone {
		return v.String()
	}
	return ""
}
