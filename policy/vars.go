package policy

import (
	"sort"

	"github.com/guardd/guardd/platform"
)

// Env is what a condition is evaluated against. Proc is nil for user-scope
// rules; only FS (and Host) is set for filesystem-scope rules.
type Env struct {
	Proc *platform.Process
	User *platform.UserStats
	Host *platform.Host
	FS   *platform.Filesystem

	pol *Policy // what proc.in_session asks about protection; nil: nothing is
}

type typ int

const (
	tBool typ = iota
	tNum
	tStr
	tStrList
	tNumList // proc.listen_ports (policy/listen.go)
)

func (t typ) String() string {
	return [...]string{"bool", "number", "string", "list of strings", "list of numbers"}[t]
}

type level int

const (
	lvHost level = iota
	lvUser
	lvProc
	lvFS // a filesystem: combines with host.* only (policy/fs.go)
)

// Var describes one variable that conditions may use.
type Var struct {
	Name string // e.g. "proc.cpu_percent"
	Type string // bool, number, string
	Doc  string // one line, with the unit; `code` in backquotes (the README and guardd.hcl(5) are generated from it)

	typ   typ
	level level
	num   func(*Env) float64
	str   func(*Env) string
	bool  func(*Env) bool
	nums  func(*Env) []float64
}

const mib = 1 << 20

// variables is the vocabulary of `when`. Adding one here is all it takes
// to make it usable, documented (Vars) and evidenced in the audit log.
var variables = map[string]*Var{}

func defNum(name string, lv level, doc string, f func(*Env) float64) {
	variables[name] = &Var{Name: name, Type: "number", Doc: doc, typ: tNum, level: lv, num: f}
}

func defStr(name string, lv level, doc string, f func(*Env) string) {
	variables[name] = &Var{Name: name, Type: "string", Doc: doc, typ: tStr, level: lv, str: f}
}

func defBool(name string, lv level, doc string, f func(*Env) bool) {
	variables[name] = &Var{Name: name, Type: "bool", Doc: doc, typ: tBool, level: lv, bool: f}
}

func defNumList(name string, lv level, doc string, f func(*Env) []float64) {
	variables[name] = &Var{Name: name, Type: "list of numbers", Doc: doc, typ: tNumList, level: lv, nums: f}
}

func init() {
	defNum("proc.pid", lvProc, "process id", func(e *Env) float64 { return float64(e.Proc.PID) })
	defNum("proc.ppid", lvProc, "parent process id", func(e *Env) float64 { return float64(e.Proc.PPID) })
	defNum("proc.uid", lvProc, "real uid", func(e *Env) float64 { return float64(e.Proc.UID) })
	defStr("proc.user", lvProc, "name of the real uid", func(e *Env) string { return e.Proc.User })
	defStr("proc.exe", lvProc, "executable path (`/proc/PID/exe`), `\"\"` when unknown", func(e *Env) string { return e.Proc.Exe })
	defBool("proc.exe_deleted", lvProc, "the executable was deleted or replaced after the process started", func(e *Env) bool { return e.Proc.ExeDeleted })
	defStr("proc.comm", lvProc, "command name (chosen by the process: never trust it for protection)", func(e *Env) string { return e.Proc.Comm })
	defStr("proc.cmdline", lvProc, "arguments joined by spaces (first 512 bytes)", func(e *Env) string { return e.Proc.Cmdline })
	defStr("proc.state", lvProc, "state of the main thread: `R` running, `S` sleeping, `D` disk wait, `Z` zombie, `T` stopped, …; when the main thread exited (`pthread_exit`) while others run, a live thread's state (never `Z`: the process is alive, and exe, cmdline and fds are read from that thread too)", func(e *Env) string { return stateString(e.Proc.State) })
	defNum("proc.cpu_percent", lvProc, "CPU use since the previous tick, 100 = one core (0 on first sight of a process older than one tick)", func(e *Env) float64 { return e.Proc.CPUPercent })
	defNum("proc.cpu_seconds", lvProc, "CPU time used over the process lifetime, seconds", func(e *Env) float64 { return e.Proc.CPUTime.Seconds() })
	defNum("proc.age_seconds", lvProc, "time since the process started, seconds", func(e *Env) float64 { return e.Proc.Age.Seconds() })
	defNum("proc.rss_mb", lvProc, "resident memory, MiB", func(e *Env) float64 { return float64(e.Proc.RSSBytes) / mib })
	defNum("proc.threads", lvProc, "number of threads", func(e *Env) float64 { return float64(e.Proc.Threads) })
	defNum("proc.nice", lvProc, "nice value, -20…19", func(e *Env) float64 { return float64(e.Proc.Nice) })
	defNum("proc.fds", lvProc, "open descriptors, counted every `fd_interval` (not every tick); -1 until first counted. Threads with a descriptor table of their own (`unshare(CLONE_FILES)`) count too", func(e *Env) float64 { return float64(e.Proc.FDs) })

	defNum("user.uid", lvUser, "uid", func(e *Env) float64 { return float64(e.User.UID) })
	defStr("user.name", lvUser, "user name", func(e *Env) string { return e.User.Name })
	defNum("user.procs", lvUser, "live processes of the user (zombies included)", func(e *Env) float64 { return float64(e.User.Procs) })
	defNum("user.zombies", lvUser, "zombie processes of the user", func(e *Env) float64 { return float64(e.User.Zombies) })
	defNum("user.cpu_percent", lvUser, "CPU use of all the user's processes since the previous tick, 100 = one core: the sum over the processes alive at the tick (a process born since the last tick counts its CPU since birth; what a process used between the last tick and its exit is not counted), so a burner that keeps moving to new pids shows its full rate every tick", func(e *Env) float64 { return e.User.CPUPercent })
	defNum("user.rss_mb", lvUser, "resident memory of all the user's processes, MiB", func(e *Env) float64 { return float64(e.User.RSSBytes) / mib })
	defNum("user.fds", lvUser, "open descriptors of all the user's processes (as counted every `fd_interval`)", func(e *Env) float64 { return float64(e.User.FDs) })

	defNum("host.load1", lvHost, "1-minute load average", func(e *Env) float64 { return e.Host.Load1 })
	defNum("host.load5", lvHost, "5-minute load average", func(e *Env) float64 { return e.Host.Load5 })
	defNum("host.load15", lvHost, "15-minute load average", func(e *Env) float64 { return e.Host.Load15 })
	defNum("host.ncpu", lvHost, "online CPUs", func(e *Env) float64 { return float64(e.Host.NCPU) })
	defNum("host.procs", lvHost, "processes on the host", func(e *Env) float64 { return float64(e.Host.Procs) })
	defNum("host.files_open_percent", lvHost, "system-wide file table in use (`fs.file-nr` / `fs.file-max`), percent", func(e *Env) float64 { return e.Host.FilesOpenPercent })
}

// stateStrings avoids allocating a one-byte string per evaluation.
var stateStrings = func() (t [256]string) {
	for i := range t {
		t[i] = string(rune(i))
	}
	return
}()

func stateString(b byte) string {
	if b == 0 {
		return ""
	}
	return stateStrings[b]
}

// Vars lists every variable, sorted by name, for documentation and
// `guardd explain`.
func Vars() []*Var {
	out := make([]*Var, 0, len(variables))
	for _, v := range variables {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// value returns the variable's value for evidence.
func (v *Var) value(e *Env) any {
	switch v.typ {
	case tNum:
		return v.num(e) // unrounded: rounded evidence can contradict the rule (3.004 shown as 3 for "> 3")
	case tStr:
		return v.str(e)
	case tNumList:
		return v.nums(e)
	default:
		return v.bool(e)
	}
}
