//go:build !linux && !freebsd

package platform

import "time"

// Sampler is not implemented on this OS yet.
type Sampler struct {
	FDInterval time.Duration
	Accounts   *Accounts
}

// NewSampler returns ErrUnsupported on this OS.
func NewSampler(*Accounts) (*Sampler, error) { return nil, ErrUnsupported }

// Sample returns ErrUnsupported on this OS.
func (*Sampler) Sample() (*Snapshot, error) { return nil, ErrUnsupported }

// Close does nothing on this OS.
func (*Sampler) Close() error { return nil }

// ReadProcess returns ErrUnsupported on this OS.
func ReadProcess(int32, *Accounts) (*Process, error) { return nil, ErrUnsupported }

// Ancestors returns nothing on this OS.
func Ancestors(int32) []int32 { return nil }

// NoteExec does nothing on this OS.
func (*Sampler) NoteExec(int32) {}

// Alive reports false on this OS.
func (*Sampler) Alive(ProcID) bool { return false }

// SetActivityProbe: no probe on this OS.
func (s *Sampler) SetActivityProbe(ActivityProbe) {}

// ProbeSkips: none.
func (s *Sampler) ProbeSkips() uint64 { return 0 }
