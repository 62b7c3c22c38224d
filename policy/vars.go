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
	tNumList // proc.listen_ports (capability/listeners)
)

func (t typ) String() string {
	return [...]string{"bool", "number", "string", "list of strings", "list of numbers"}[t]
}

// Level is what a variable describes, which decides the scope of a rule
// that reads it: the deepest level among its variables (a process rule
// reads a proc.* variable, a user rule only user.* and host.*).
type Level int

const (
	HostLevel Level = iota // the host: combines with any level
	UserLevel              // one customer
	ProcLevel              // one process of a customer
	FSLevel                // a filesystem: combines with host.* only (see ScopeFilesystem)
)

// Var describes one variable that conditions may use.
type Var struct {
	Name string // e.g. "proc.cpu_percent"
	Type string // bool, number, string
	Doc  string // one line, with the unit; `code` in backquotes (the README and guardd.hcl(5) are generated from it)

	typ   typ
	level Level
	num   func(*Env) float64
	str   func(*Env) string
	bool  func(*Env) bool
	nums  func(*Env) []float64
}

// Level is the variable's level (what decides a rule's scope).
func (v *Var) Level() Level { return v.level }

const mib = 1 << 20

// variables is the vocabulary of `when`. Defining one is all it takes to
// make it usable, documented (Vars) and evidenced in the audit log.
var variables = map[string]*Var{}

// define adds v; a name defined twice is a bug of the program (two
// capabilities claiming one variable), found at start.
func define(v *Var) {
	if _, dup := variables[v.Name]; dup {
		panic("policy: variable " + v.Name + " defined twice")
	}
	variables[v.Name] = v
}

// The Define functions add a variable to the language, for its
// capability's init function (core variables are defined here). doc is
// one line with the unit; f reads the variable from the Env of its level
// (e.Proc for ProcLevel, e.User for UserLevel, e.FS for FSLevel, e.Host
// always), which is never nil when f runs.

// DefineNumber adds a number variable.
func DefineNumber(name string, lv Level, doc string, f func(*Env) float64) {
	define(&Var{Name: name, Type: "number", Doc: doc, typ: tNum, level: lv, num: f})
}

// DefineString adds a string variable.
func DefineString(name string, lv Level, doc string, f func(*Env) string) {
	define(&Var{Name: name, Type: "string", Doc: doc, typ: tStr, level: lv, str: f})
}

// DefineBool adds a bool variable.
func DefineBool(name string, lv Level, doc string, f func(*Env) bool) {
	define(&Var{Name: name, Type: "bool", Doc: doc, typ: tBool, level: lv, bool: f})
}

// DefineNumberList adds a list-of-numbers variable (proc.listen_ports).
func DefineNumberList(name string, lv Level, doc string, f func(*Env) []float64) {
	define(&Var{Name: name, Type: "list of numbers", Doc: doc, typ: tNumList, level: lv, nums: f})
}

func init() {
	DefineNumber("proc.pid", ProcLevel, "process id", func(e *Env) float64 { return float64(e.Proc.PID) })
	DefineNumber("proc.ppid", ProcLevel, "parent process id", func(e *Env) float64 { return float64(e.Proc.PPID) })
	DefineNumber("proc.uid", ProcLevel, "real uid", func(e *Env) float64 { return float64(e.Proc.UID) })
	DefineString("proc.user", ProcLevel, "name of the real uid", func(e *Env) string { return e.Proc.User })
	DefineString("proc.exe", ProcLevel, "executable path (`/proc/PID/exe`), `\"\"` when unknown", func(e *Env) string { return e.Proc.Exe })
	DefineBool("proc.exe_deleted", ProcLevel, "the executable was deleted or replaced after the process started", func(e *Env) bool { return e.Proc.ExeDeleted })
	DefineString("proc.comm", ProcLevel, "command name (chosen by the process: never trust it for protection)", func(e *Env) string { return e.Proc.Comm })
	DefineString("proc.cmdline", ProcLevel, "arguments joined by spaces (first 512 bytes)", func(e *Env) string { return e.Proc.Cmdline })
	DefineString("proc.state", ProcLevel, "state of the main thread: `R` running, `S` sleeping, `D` disk wait, `Z` zombie, `T` stopped, …; when the main thread exited (`pthread_exit`) while others run, a live thread's state (never `Z`: the process is alive, and exe, cmdline and fds are read from that thread too)", func(e *Env) string { return stateString(e.Proc.State) })
	DefineNumber("proc.cpu_percent", ProcLevel, "CPU use since the previous tick, 100 = one core (0 on first sight of a process older than one tick)", func(e *Env) float64 { return e.Proc.CPUPercent })
	DefineNumber("proc.cpu_seconds", ProcLevel, "CPU time used over the process lifetime, seconds", func(e *Env) float64 { return e.Proc.CPUTime.Seconds() })
	DefineNumber("proc.age_seconds", ProcLevel, "time since the process started, seconds", func(e *Env) float64 { return e.Proc.Age.Seconds() })
	DefineNumber("proc.rss_mb", ProcLevel, "resident memory, MiB", func(e *Env) float64 { return float64(e.Proc.RSSBytes) / mib })
	DefineNumber("proc.threads", ProcLevel, "number of threads", func(e *Env) float64 { return float64(e.Proc.Threads) })
	DefineNumber("proc.nice", ProcLevel, "nice value, -20…19", func(e *Env) float64 { return float64(e.Proc.Nice) })
	DefineNumber("proc.fds", ProcLevel, "open descriptors, counted every `fd_interval` (not every tick); -1 until first counted. Threads with a descriptor table of their own (`unshare(CLONE_FILES)`) count too", func(e *Env) float64 { return float64(e.Proc.FDs) })

	DefineNumber("user.uid", UserLevel, "uid", func(e *Env) float64 { return float64(e.User.UID) })
	DefineString("user.name", UserLevel, "user name", func(e *Env) string { return e.User.Name })
	DefineNumber("user.procs", UserLevel, "live processes of the user (zombies included)", func(e *Env) float64 { return float64(e.User.Procs) })
	DefineNumber("user.zombies", UserLevel, "zombie processes of the user", func(e *Env) float64 { return float64(e.User.Zombies) })
	DefineNumber("user.cpu_percent", UserLevel, "CPU use of all the user's processes since the previous tick, 100 = one core: the sum over the processes alive at the tick (a process born since the last tick counts its CPU since birth; what a process used between the last tick and its exit is not counted), so a burner that keeps moving to new pids shows its full rate every tick", func(e *Env) float64 { return e.User.CPUPercent })
	DefineNumber("user.rss_mb", UserLevel, "resident memory of all the user's processes, MiB", func(e *Env) float64 { return float64(e.User.RSSBytes) / mib })
	DefineNumber("user.fds", UserLevel, "open descriptors of all the user's processes (as counted every `fd_interval`)", func(e *Env) float64 { return float64(e.User.FDs) })

	DefineNumber("host.load1", HostLevel, "1-minute load average", func(e *Env) float64 { return e.Host.Load1 })
	DefineNumber("host.load5", HostLevel, "5-minute load average", func(e *Env) float64 { return e.Host.Load5 })
	DefineNumber("host.load15", HostLevel, "15-minute load average", func(e *Env) float64 { return e.Host.Load15 })
	DefineNumber("host.ncpu", HostLevel, "online CPUs", func(e *Env) float64 { return float64(e.Host.NCPU) })
	DefineNumber("host.procs", HostLevel, "processes on the host", func(e *Env) float64 { return float64(e.Host.Procs) })
	DefineNumber("host.files_open_percent", HostLevel, "system-wide file table in use (`fs.file-nr` / `fs.file-max`), percent", func(e *Env) float64 { return e.Host.FilesOpenPercent })
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
