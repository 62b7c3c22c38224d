package platform

import (
	"os"
	"strconv"
)

// Small reads of one process for the process-event observer, which sees
// pids before any sample does (a fork, a uid change).

// RealUID reads the real uid of a process from /proc/PID/status (not from
// the owner of its files: a non-dumpable process shows them as root's);
// false when it is gone or the file does not parse.
func RealUID(pid int32) (uint32, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/status")
	if err != nil {
		return 0, false
	}
	ids, err := ParseStatusIDs(b)
	return ids.UID, err == nil
}

// ReadStat reads /proc/PID/stat into s: the start time that names the
// process, and its parent.
func ReadStat(pid int32, s *Stat) error {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		return err
	}
	return ParseStat(b, s)
}

// ListPIDs lists the pids in /proc, for an observer that polls where the
// proc connector is missing.
func ListPIDs() ([]int32, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	pids := make([]int32, 0, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, int32(pid))
		}
	}
	return pids, nil
}
