//go:build linux || freebsd

package enforce

import (
	"fmt"

	"github.com/guardd/guardd/platform"
)

// doorOS is everything the entry points do to the host once a target has
// passed the floor and the dry-run check. Tests put a fake here (and see
// that a floored target never reaches it); nil is the host.
type doorOS interface {
	readProcess(e *Enforcer, pid int32) (*platform.Process, error)          // the identity re-check
	act(e *Enforcer, a Action) (note string, err error)                     // renice, stop, kill or reap one process
	signalUser(e *Enforcer, uid, gid uint32, sig string) (helperRun, error) // kill(-1) as the user
	newUser(e *Enforcer, uid, gid uint32) userOS                            // a kill_user / stop_user sweep
	procCap(id platform.ProcID, n int) error                                // RLIMIT_NPROC (or rctl) of one process
	procCapAsUser(e *Enforcer, args []string) error                         // the same through a helper as the user
	clean(e *Enforcer, c Clean) CleanResult                                 // walk the trees (c.DryRun: remove nothing)
	destroySocket(l platform.Listener) error                                // SOCK_DESTROY by cookie
}

func (e *Enforcer) host() doorOS {
	if e.os != nil {
		return e.os
	}
	return hostOS{}
}

// hostOS is doorOS on the real host.
type hostOS struct{}

func (hostOS) readProcess(e *Enforcer, pid int32) (*platform.Process, error) {
	return platform.ReadProcess(pid, e.Accounts)
}
func (hostOS) act(e *Enforcer, a Action) (string, error) { return e.act(a) }
func (hostOS) signalUser(e *Enforcer, uid, gid uint32, sig string) (helperRun, error) {
	return e.runHelperWatched(HelperSignalUser, fmt.Sprint(uid), fmt.Sprint(gid), sig)
}
func (hostOS) newUser(e *Enforcer, uid, gid uint32) userOS { return newHostUser(e, uid, gid) }
func (hostOS) procCap(id platform.ProcID, n int) error     { return setProcCap(id, n) }
func (hostOS) procCapAsUser(e *Enforcer, args []string) error {
	_, err := e.runHelper(args...)
	return err
}
func (hostOS) clean(e *Enforcer, c Clean) CleanResult  { return e.cleanTrees(c) }
func (hostOS) destroySocket(l platform.Listener) error { return destroySocket(l) }
