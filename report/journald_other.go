//go:build !linux

package report

import "net"

// sendJournal sends one entry (journald runs on Linux only; this keeps
// the package building elsewhere).
func sendJournal(c *net.UnixConn, entry []byte) error {
	_, err := c.Write(entry)
	return err
}
