package platform

import (
	"errors"
	"io/fs"
	"os"
)

// ReadNetDev reads every interface's counters from /proc/net/dev.
func ReadNetDev() ([]NetDev, error) {
	b, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		return nil, err
	}
	devs, _, err := ParseNetDev(b)
	return devs, err
}

// ReadSockstat reads /proc/net/sockstat and, where IPv6 is on,
// /proc/net/sockstat6.
func ReadSockstat() (Sockstat, error) {
	var s Sockstat
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return s, err
	}
	if err := ParseSockstat(b, &s); err != nil {
		return s, err
	}
	if b, err := os.ReadFile("/proc/net/sockstat6"); err == nil {
		if err := ParseSockstat(b, &s); err != nil {
			return s, err
		}
	}
	return s, nil
}

// ReadTCPMem reads net.ipv4.tcp_mem.
func ReadTCPMem() (TCPMem, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_mem")
	if err != nil {
		return TCPMem{}, err
	}
	return ParseTCPMem(b)
}

// ReadSensors reads temperatures and fan speeds from /sys/class/hwmon. A
// host without it (virtual machines, containers) has none: an empty
// Hwmon and no error.
func ReadSensors() (Hwmon, error) {
	h, err := ReadHwmon(os.DirFS("/sys/class/hwmon"))
	if errors.Is(err, fs.ErrNotExist) {
		return Hwmon{}, nil
	}
	return h, err
}
