//go:build !linux && !freebsd

package main

// protectSelf does nothing on this OS yet (FreeBSD: protect(1) -i).
func protectSelf() error { return nil }
