//go:build !linux && !freebsd

package enforce

import (
	"github.com/guardd/guardd/platform"
)

// handle is not implemented on this OS yet.
type handle struct{}

func signal(platform.ProcID, string) (*handle, error) { return nil, platform.ErrUnsupported }
func renice(platform.ProcID, int) (string, error)     { return "", platform.ErrUnsupported }
func (h *handle) send(string) error                   { return platform.ErrUnsupported }
func (h *handle) alive() (bool, error)                { return false, platform.ErrUnsupported }
func (h *handle) close()                              {}
func (h *handle) note() string                        { return "" }
