package platform

import (
	"bytes"
	"os"
)

// BootID identifies the current boot: process start times are only
// comparable within one.
func BootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}
