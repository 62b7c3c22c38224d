//go:build !linux && !freebsd

package enforce

import "github.com/guardd/guardd/platform"

// doorOS is door_host.go's, without the whole-user actions this OS lacks.
type doorOS interface {
	readProcess(e *Enforcer, pid int32) (*platform.Process, error)
	act(e *Enforcer, a Action) (note string, err error)
	clean(e *Enforcer, c Clean) CleanResult
	destroySocket(l platform.Listener) error
}

func (e *Enforcer) host() doorOS {
	if e.os != nil {
		return e.os
	}
	return hostOS{}
}

type hostOS struct{}

func (hostOS) readProcess(e *Enforcer, pid int32) (*platform.Process, error) {
	return platform.ReadProcess(pid, e.Accounts)
}
func (hostOS) act(e *Enforcer, a Action) (string, error) { return e.act(a) }
func (hostOS) clean(e *Enforcer, c Clean) CleanResult    { return e.cleanTrees(c) }
func (hostOS) destroySocket(l platform.Listener) error   { return destroySocket(l) }
