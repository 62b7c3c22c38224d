package enforce

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/guardd/guardd/platform"
)

// zombieChildren counts the zombie children of pid, from each of its
// threads' children lists (/proc/PID/task/TID/children, proc(5)).
func zombieChildren(pid int32) int {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(int(pid)) + "/task/*/children")
	n := 0
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, c := range strings.Fields(string(b)) {
			st, err := os.ReadFile("/proc/" + c + "/stat")
			var s platform.Stat
			if err == nil && platform.ParseStat(st, &s) == nil && s.State == 'Z' {
				n++
			}
		}
	}
	return n
}
