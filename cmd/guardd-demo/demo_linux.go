package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/guardd/guardd/internal/printable"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/report"
	"golang.org/x/sys/unix"
)

// demoUser is the throwaway account the demo's offenders run as, and
// stormUser the one whose fork bomb is ended with kill_user (which takes
// every process of its user). Like the test users they are named gdt-*, so
// a leftover is recognisable and safe to remove; each run has its own, so
// that two demos cannot remove each other's.
var demoUser, stormUser string

// usersLock is the lock that says gdt-* users are in use (see
// tests/harness_test.go).
const usersLock = "/tmp/guardd-gdt-users.lock"

type demoOffender struct {
	label    string // what it is, for the summary
	expect   string // what the policy should do to it
	file     string // name of the binary copy
	argv0    string
	mode     string            // _offender mode
	tmp      bool              // run from a temp dir (the "cracking kit")
	args     []string          // more _offender arguments, after the mode
	helper   bool              // not an offender (a lock holder): started in order, not waited for, not summarized
	account  *platform.Account // runs as this account instead of the demo user
	deferred bool              // started later by its own code (the fork bomb), not with the others
	// done says when its fate is sealed; nil: it exited (tmp: a would-do
	// line). about picks the audit lines about it; nil: those of its pid.
	done   func([]report.Event) bool
	about  func(report.Event) bool
	cmd    *exec.Cmd
	id     platform.ProcID
	exited chan struct{}
}

// runDemo runs the demo with the daemon binary guardd; it gives up after
// timeout.
func runDemo(ctx context.Context, guardd string, timeout time.Duration, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	say := func(format string, a ...any) { fmt.Fprintf(stdout, "demo: "+format+"\n", a...) }

	// The test suites remove leftover gdt-* users, and all their
	// processes, only when no one holds this lock shared: a demo run
	// beside them holds it too.
	lock, err := os.OpenFile(usersLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_SH); err != nil {
		return fmt.Errorf("lock %s: %w", usersLock, err)
	}

	var suffix [3]byte
	rand.Read(suffix[:])
	demoUser = fmt.Sprintf("gdt-demo-%x", suffix)
	stormUser = demoUser + "-b"
	// Orphans (a fork bomb's, a zombie factory's) come to the demo, not to
	// init, which on some hosts (containers) does not reap. The reaping
	// outlasts the users' removal (defers run last to first).
	stopReaping := reapOrphans()
	defer stopReaping()
	var accs []platform.Account
	for _, name := range []string{demoUser, stormUser} {
		if out, err := exec.Command("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
			return fmt.Errorf("useradd %s: %v: %s", name, err, bytes.TrimSpace(out))
		}
		defer func() {
			if err := removeDemoUser(name); err != nil {
				fmt.Fprintln(stderr, "demo: cleanup:", err)
			} else {
				say("removed user %s and its processes", name)
			}
		}()
		a, ok := lookupDemoUser(name)
		if !ok {
			return fmt.Errorf("user %s not found after useradd", name)
		}
		accs = append(accs, a)
	}
	acc, stormAcc := accs[0], accs[1]
	// The offenders are copies of this binary (hidden _offender command)
	// in directories the demo user can execute from: /run for the normal
	// ones (not a temp dir, so the temp-exe rule leaves them alone), /tmp
	// for the dropped-in "kit".
	dir, err := os.MkdirTemp("/run", "guardd-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	kitDir, err := os.MkdirTemp("/tmp", "guardd-demo-kit-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(kitDir)
	for _, d := range []string{dir, kitDir} {
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	offenders := []*demoOffender{
		{label: "CPU burner", expect: "cpu-hog: reniced to 19, then killed", file: "burner", argv0: "burner", mode: "burn"},
		{label: "burner calling itself sshd", expect: "cpu-hog: a name protects nothing", file: "sshd", argv0: "sshd", mode: "burn"},
		{label: "long runner", expect: "long-runner: killed", file: "long-runner", argv0: "long-runner", mode: "sleep"},
		{label: "tool run from /tmp", expect: "temp-exe (monitor): would kill", file: "kit", argv0: "kit", mode: "sleep", tmp: true},
	}
	more, err := lockAndTempOffenders(dir) // demo_locks_linux.go
	if err != nil {
		return err
	}
	offenders = append(offenders, more...)
	offenders = append(offenders, listenOffenders()...) // demo_listen_linux.go
	storm := stormOffenders(dir, stormAcc)              // demo_forkstorm_linux.go
	offenders = append(offenders, storm...)
	for _, o := range offenders {
		d := dir
		if o.tmp {
			d = kitDir
		}
		o.file = filepath.Join(d, o.file)
		if err := copyFile(self, o.file, 0o755); err != nil {
			return err
		}
	}

	var policyText bytes.Buffer
	tmpl := template.Must(template.New("demo").Parse(demoPolicy))
	if err := tmpl.Execute(&policyText, struct{ Dir, User, StormUser string }{dir, demoUser, stormUser}); err != nil {
		return err
	}
	policyPath := filepath.Join(dir, "policy.hcl")
	if err := os.WriteFile(policyPath, policyText.Bytes(), 0o600); err != nil {
		return err
	}
	auditPath := filepath.Join(dir, "audit.jsonl")

	say("users %s (uid %d) and %s (uid %d) created; starting offenders as them", demoUser, acc.UID, stormUser, stormAcc.UID)
	// The burners start last: at full speed they would slow the start of
	// everything after them, and the long-runner rule counts from each
	// offender's start.
	startOrder := slices.Clone(offenders)
	slices.SortStableFunc(startOrder, func(a, b *demoOffender) int {
		return cmp.Compare(boolInt(a.mode == "burn"), boolInt(b.mode == "burn"))
	})
	for _, o := range startOrder {
		if o.deferred {
			continue // started later, by triggerStorm
		}
		a := acc
		if o.account != nil {
			a = *o.account
		}
		if err := o.start(a); err != nil {
			return err
		}
		defer o.cmd.Process.Kill()
		say("  %-28s pid %-7d %s", o.label, o.id.PID, o.file)
	}

	say("starting guardd on the default policy with shortened times (%s); its log follows", policyPath)
	daemonCmd := exec.Command(guardd, "run", "--policy", policyPath, "--log-format", "text")
	daemonCmd.Stdout = stdout
	daemonCmd.Stderr = &prefixWriter{w: stdout, prefix: "  guardd | "}
	daemonCmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := daemonCmd.Start(); err != nil {
		return err
	}
	daemonDone := make(chan error, 1)
	go func() { daemonDone <- daemonCmd.Wait() }()
	go triggerStorm(ctx, offenders, say) // once the burners are gone
	defer func() {
		daemonCmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-daemonDone:
		case <-time.After(10 * time.Second):
			daemonCmd.Process.Kill()
			<-daemonDone
		}
	}()

	// Wait until every offender met its fate: the killed ones exit, the
	// monitored one gets a would-do line.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		events := readAudit(auditPath)
		done := true
		for _, o := range offenders {
			if o.helper {
				continue
			}
			if o.done != nil {
				done = done && o.done(events)
				continue
			}
			if o.tmp {
				done = done && hasEvent(events, o.id, "would-do")
			} else {
				select {
				case <-o.exited:
				default:
					done = false
				}
			}
		}
		if done {
			break
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("offenders still running after %s; see the log above", timeout)
			}
			say("interrupted; cleaning up")
			return nil
		case err := <-daemonDone:
			daemonDone <- err
			return fmt.Errorf("guardd exited early: %v", err)
		case <-tick.C:
		}
	}

	fmt.Fprintln(stdout)
	say("what happened, from the audit log (%s):", auditPath)
	events := readAudit(auditPath)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  OFFENDER\tEXPECTED\tRULE (FILE:LINE)\tSTEP\tOUTCOME\tWHY")
	for _, o := range offenders {
		if o.helper {
			continue
		}
		for _, ev := range events {
			if o.about != nil && !o.about(ev) || o.about == nil && (ev.PID != o.id.PID || ev.StartTime != o.id.StartTime) {
				continue
			}
			action := ev.Action
			if ev.Signal != "" {
				action += " SIG" + ev.Signal
			}
			if ev.Nice != nil {
				action += fmt.Sprintf(" nice %d", *ev.Nice)
			}
			why := formatValues(ev.Values)
			if ev.Reason != "" {
				why += " (" + printable.Escape(ev.Reason) + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s (%s)\t%s\t%s\t%s\n", o.label, o.expect, ev.Rule, ev.RuleAt, action, ev.Outcome, why)
		}
	}
	tw.Flush()
	fmt.Fprintln(stdout)
	return nil
}

func (o *demoOffender) start(acc platform.Account) error {
	o.cmd = &exec.Cmd{Path: o.file, Args: append([]string{o.argv0, "_offender", o.mode}, o.args...)}
	o.cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: acc.UID, Gid: acc.GID},
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	out, err := o.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := o.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", o.label, err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		o.cmd.Process.Kill()
		o.cmd.Wait() // reaped: a zombie would look like a survivor to the cleanup
		return fmt.Errorf("start %s: no ready line: %v", o.label, err)
	}
	p, err := platform.ReadProcess(int32(o.cmd.Process.Pid), nil)
	if err != nil {
		return fmt.Errorf("start %s: %w", o.label, err)
	}
	o.id = p.ProcID
	o.exited = make(chan struct{})
	go func() { o.cmd.Wait(); close(o.exited) }()
	return nil
}

// runOffender is the hidden `_offender` command the demo's offenders run:
// it caps its user's processes first (a safety net), says it is ready,
// then burns CPU or sleeps.
func runOffender(args []string) error {
	// RLIMIT_NPROC counts the threads of every process of the uid: nine
	// Go offenders of a few threads each need more than 64.
	lim := unix.Rlimit{Cur: 256, Max: 256}
	if len(args) > 0 && args[0] == "bomb" {
		lim = unix.Rlimit{Cur: demoBombNet, Max: demoBombNet} // above the cap guardd sets
	}
	if err := unix.Setrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
		return err
	}
	if len(args) > 0 && demoModes[args[0]] != nil {
		return demoModes[args[0]](args[1:]) // demo_locks_linux.go
	}
	if len(args) != 1 {
		return errors.New("usage: _offender burn|sleep")
	}
	fmt.Printf("ready %d\n", os.Getpid())
	switch args[0] {
	case "burn":
		// One spinning thread each: on two cores neither burner starves
		// the other once one of them is reniced to 19.
		for x := uint64(1); x != 0; x++ { // spins for centuries: x wraps only after 2^64 steps
		}
	case "sleep":
		select {}
	}
	return fmt.Errorf("unknown offender mode %q", args[0])
}

func lookupDemoUser(name string) (platform.Account, bool) {
	acc := platform.NewAccounts()
	if acc.Refresh() != nil {
		return platform.Account{}, false
	}
	return acc.Lookup(name)
}

// removeDemoUser kills every process of a demo user and deletes it.
func removeDemoUser(name string) error {
	a, ok := lookupDemoUser(name)
	if !ok {
		return nil
	}
	if !strings.HasPrefix(a.Name, "gdt-") || a.UID < 1000 {
		return fmt.Errorf("refusing to remove %s (uid %d)", a.Name, a.UID)
	}
	deadline := time.Now().Add(10 * time.Second)
	for killAllOf(a.UID) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of %s survive SIGKILL", name)
		}
		time.Sleep(50 * time.Millisecond) // let the kernel reap them
	}
	// userdel fails rather than waits while another program holds the
	// passwd lock: try a few times.
	var err error
	for range 20 {
		var out []byte
		if out, err = exec.Command("userdel", name).CombinedOutput(); err == nil {
			return nil
		}
		err = fmt.Errorf("userdel %s: %v: %s", name, err, bytes.TrimSpace(out))
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// killAllOf sends SIGKILL to every process whose real uid is uid and
// returns how many it found.
func killAllOf(uid uint32) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		ids, err := platform.ParseStatusIDs(b)
		if err != nil || ids.UID != uid {
			continue
		}
		n++
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return n
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func readAudit(path string) []report.Event {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []report.Event
	for _, line := range bytes.Split(b, []byte("\n")) {
		var ev report.Event
		if json.Unmarshal(line, &ev) == nil {
			out = append(out, ev)
		}
	}
	return out
}

func hasEvent(events []report.Event, id platform.ProcID, outcome string) bool {
	for _, ev := range events {
		if ev.PID == id.PID && ev.StartTime == id.StartTime && ev.Outcome == outcome {
			return true
		}
	}
	return false
}

// prefixWriter prefixes every line, so guardd's log stands apart from the
// demo's narration.
type prefixWriter struct {
	w      io.Writer
	prefix string
	mid    bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	var buf bytes.Buffer
	for _, c := range b {
		if !p.mid {
			buf.WriteString(p.prefix)
			p.mid = true
		}
		buf.WriteByte(c)
		if c == '\n' {
			p.mid = false
		}
	}
	if _, err := p.w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
}

// formatValues is the table's WHY: the rule's values, sorted by name, with
// customer text (an exe path) escaped.
func formatValues(m map[string]any) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if s, ok := m[k].(string); ok {
			parts = append(parts, k+`="`+printable.Escape(s)+`"`)
		} else {
			parts = append(parts, printable.Escape(fmt.Sprintf("%s=%v", k, m[k])))
		}
	}
	return strings.Join(parts, " ")
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
