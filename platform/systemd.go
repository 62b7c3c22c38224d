package platform

import "os"

// SystemdBooted reports whether systemd is the host's init, as
// sd_booted(3) tells: /run/systemd/system exists.
func SystemdBooted() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}
