//go:build !linux && !freebsd

package main

// protectSelf does nothing on this OS yet (FreeBSD: protect(1) -i).
func protectSelf() error { return nil }

// releaseStartupPages does nothing on this OS (MADV_PAGEOUT is Linux's).
func releaseStartupPages() (int64, error) { return 0, nil }
