//go:build linux

// Command offender misbehaves on purpose, for guardd's end-to-end tests. It
// runs as a throwaway gdt-* user and always under an RLIMIT_NPROC safety net
// set before it does anything else, so that no offender (or what it starts)
// can exhaust the host's process table.
//
// Usage:
//
//	offender [flags] burn [marker...]        spin on -threads threads
//	offender [flags] sleep [marker...]       block forever
//	offender [flags] exec -- ARGV...         set the limits, then execve ARGV
//
// Markers are ignored; they only show in the command line, so that a rule
// can pick one offender out with strcontains(proc.cmdline, ...).
//
// Once set up, it prints "ready PID NICE" on stdout; with -trap-term it prints
// "term" and exits 0 on SIGTERM.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const defaultNproc = 64

// Flags shared by the modes. A mode's own options come after the mode word.
var (
	_          = flag.Uint64("nproc", defaultNproc, "RLIMIT_NPROC (soft and hard), set first thing")
	threads    = flag.Int("threads", 1, "burn: number of spinning threads")
	name       = flag.String("name", "", "set the command name (comm) with PR_SET_NAME")
	trapTerm   = flag.Bool("trap-term", false, `on SIGTERM print "term" and exit 0`)
	ignoreTerm = flag.Bool("ignore-term", false, "ignore SIGTERM")
)

// The main goroutine stays on the main thread (it is there during init):
// PR_SET_NAME names the calling thread, and ps and guardd read the comm of
// the main thread.
func init() { runtime.LockOSThread() }

func main() {
	// The reaper runs as root and only supervises: the safety net is its
	// child's to set (reaper.go).
	if len(os.Args) > 1 && os.Args[1] == "reaper" {
		runReaper(os.Args[2:])
		return
	}
	// The safety net comes first, before flag parsing can fail or the
	// runtime starts more threads: RLIMIT_NPROC counts the uid's threads.
	// A lower limit already in place stays (guardd's process cap may have
	// reached this process first, and raising it takes CAP_SYS_RESOURCE):
	// the net only ever tightens.
	nproc := nprocArg(os.Args[1:])
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &cur); err == nil && cur.Max < nproc {
		nproc = cur.Max
	}
	lim := unix.Rlimit{Cur: nproc, Max: nproc}
	if err := unix.Setrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "offender: setrlimit(RLIMIT_NPROC):", err)
		os.Exit(3)
	}

	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: offender [flags] MODE [args...] (modes: burn|sleep [marker...], exec -- ARGV..., and more)")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	mode, rest := flag.Arg(0), flag.Args()[1:]

	if *name != "" {
		b, err := unix.BytePtrFromString(*name)
		if err != nil {
			fail("-name: %v", err)
		}
		// The kernel keeps the first 15 bytes (TASK_COMM_LEN).
		if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(b)), 0, 0, 0); err != nil {
			fail("prctl(PR_SET_NAME): %v", err)
		}
	}
	switch {
	case *trapTerm:
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		go func() {
			<-c
			fmt.Println("term")
			os.Exit(0)
		}()
	case *ignoreTerm:
		signal.Ignore(syscall.SIGTERM)
	}

	run := modes[mode]
	if run == nil {
		fail("unknown mode %q", mode)
	}
	run(rest)
}

// modes maps a mode word to what the offender does; each calls ready()
// once it is set up. More modes register from init functions in their own
// files (one file per kind of misbehaviour).
var modes = map[string]func(args []string){
	"burn": func([]string) {
		n := max(*threads, 1)
		if n > runtime.GOMAXPROCS(0) {
			runtime.GOMAXPROCS(n)
		}
		for range n {
			go spin()
		}
		ready()
		forever()
	},
	"sleep": func([]string) {
		ready()
		forever()
	},
	"exec": func(rest []string) {
		if len(rest) > 0 && rest[0] == "--" {
			rest = rest[1:]
		}
		if len(rest) == 0 {
			fail("exec: no command")
		}
		path, err := exec.LookPath(rest[0])
		if err != nil {
			fail("exec: %v", err)
		}
		ready() // the pid stays the same across execve
		err = unix.Exec(path, rest, os.Environ())
		fail("exec %s: %v", path, err)
	},
}

// nprocArg finds -nproc N (or -nproc=N, with one or two dashes) before the
// mode word; flag parsing proper happens after the limit is set.
func nprocArg(args []string) uint64 {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "--" {
			break // the mode word or the end of flags
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		name, val, hasVal := strings.Cut(a, "=")
		if name != "nproc" {
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				break
			}
			val = args[i+1]
		}
		n, err := strconv.ParseUint(val, 10, 64)
		if err != nil || n == 0 {
			fmt.Fprintf(os.Stderr, "offender: bad -nproc %q\n", val)
			os.Exit(2)
		}
		return n
	}
	return defaultNproc
}

func spin() {
	runtime.LockOSThread()
	x := uint64(1)
	for {
		x = x*6364136223846793005 + 1442695040888963407
		if x == 0 {
			fmt.Print("") // never: keeps the loop from being optimised away
		}
	}
}

// ready says the offender is set up: "ready PID NICE", with the nice value
// it had at that moment (guardd may renice it right after, before the test
// can look).
func ready() {
	nice := 0
	if prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0); err == nil {
		nice = 20 - prio // the raw system call returns 20 - nice
	}
	fmt.Printf("ready %d %d\n", os.Getpid(), nice)
}

func forever() {
	for {
		time.Sleep(time.Hour)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "offender: "+format+"\n", args...)
	os.Exit(1)
}
