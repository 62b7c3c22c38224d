//go:build !linux

package platform

// ReadNetDev is not implemented on this OS yet (FreeBSD: getifaddrs'
// if_data, or the net.link.generic sysctls).
func ReadNetDev() ([]NetDev, error) { return nil, ErrUnsupported }

// ReadSockstat is not implemented on this OS yet (FreeBSD: kern.ipc.numopensockets
// and the mbuf statistics of netstat -m).
func ReadSockstat() (Sockstat, error) { return Sockstat{}, ErrUnsupported }

// ReadTCPMem is not implemented on this OS yet.
func ReadTCPMem() (TCPMem, error) { return TCPMem{}, ErrUnsupported }

// ReadSensors is not implemented on this OS yet (FreeBSD: dev.cpu.N.temperature
// and hw.acpi.thermal sysctls).
func ReadSensors() (Hwmon, error) { return Hwmon{}, ErrUnsupported }
