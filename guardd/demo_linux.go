package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/report"
	"golang.org/x/sys/unix"
)

// demoPolicy is the default policy with shortened times (see demo.hcl).
//
//go:embed demo.hcl
var demoPolicy string

// demoUser is the throwaway account the demo's offenders run as. Like the
// test users it is named gdt-*, so a leftover is recognisable and safe to
// remove.
const demoUser = "gdt-demo"

type demoOffender struct {
	label  string // what it is, for the summary
	expect string // what the policy should do to it
	file   string // name of the binary copy
	argv0  string
	mode   string // _offender mode
	tmp    bool   // run from a temp dir (the "cracking kit")
	cmd    *exec.Cmd
	id     platform.ProcID
	exited chan struct{}
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("demo", "demo\n\nCreates the throwaway user "+demoUser+", starts offenders as that user (a CPU\nburner, a long runner, a burner that calls itself sshd, a tool run from\n/tmp), runs guardd on the default policy with shortened times, shows what\nhappens to each offender and why, and removes everything it made, also on\nCtrl-C. Needs root.", stderr)
	timeout := fs.Duration("timeout", 90*time.Second, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("demo needs root: it creates a throwaway user and runs guardd")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	say := func(format string, a ...any) { fmt.Fprintf(stdout, "demo: "+format+"\n", a...) }

	if err := removeDemoUser(); err != nil {
		return err
	}
	if out, err := exec.Command("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", demoUser).CombinedOutput(); err != nil {
		return fmt.Errorf("useradd %s: %v: %s", demoUser, err, bytes.TrimSpace(out))
	}
	defer func() {
		if err := removeDemoUser(); err != nil {
			fmt.Fprintln(stderr, "demo: cleanup:", err)
		} else {
			say("removed user %s, its processes and the demo's files", demoUser)
		}
	}()
	acc, ok := lookupDemoUser()
	if !ok {
		return fmt.Errorf("user %s not found after useradd", demoUser)
	}

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
	if err := tmpl.Execute(&policyText, struct{ Dir, User string }{dir, demoUser}); err != nil {
		return err
	}
	policyPath := filepath.Join(dir, "policy.hcl")
	if err := os.WriteFile(policyPath, policyText.Bytes(), 0o600); err != nil {
		return err
	}
	auditPath := filepath.Join(dir, "audit.jsonl")

	say("user %s (uid %d) created; starting offenders as that user", demoUser, acc.UID)
	for _, o := range offenders {
		if err := o.start(acc); err != nil {
			return err
		}
		defer o.cmd.Process.Kill()
		say("  %-28s pid %-7d %s", o.label, o.id.PID, o.file)
	}

	say("starting guardd on the default policy with shortened times (%s); its log follows", policyPath)
	daemonCmd := exec.Command(self, "run", "--policy", policyPath, "--log-format", "text")
	daemonCmd.Stdout = stdout
	daemonCmd.Stderr = &prefixWriter{w: stdout, prefix: "  guardd | "}
	daemonCmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := daemonCmd.Start(); err != nil {
		return err
	}
	daemonDone := make(chan error, 1)
	go func() { daemonDone <- daemonCmd.Wait() }()
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
				return fmt.Errorf("offenders still running after %s; see the log above", *timeout)
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
		for _, ev := range events {
			if ev.PID != o.id.PID || ev.StartTime != o.id.StartTime {
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
				why += " (" + ev.Reason + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s (%s)\t%s\t%s\t%s\n", o.label, o.expect, ev.Rule, ev.RuleAt, action, ev.Outcome, why)
		}
	}
	tw.Flush()
	fmt.Fprintln(stdout)
	return nil
}

func (o *demoOffender) start(acc platform.Account) error {
	o.cmd = &exec.Cmd{Path: o.file, Args: []string{o.argv0, "_offender", o.mode}}
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
	lim := unix.Rlimit{Cur: 64, Max: 64}
	if err := unix.Setrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
		return err
	}
	if len(args) != 1 {
		return errors.New("usage: _offender burn|sleep")
	}
	fmt.Printf("ready %d\n", os.Getpid())
	switch args[0] {
	case "burn":
		// Two spinning threads, like a parallel build: the burner stays
		// over the cpu-hog threshold even on a busy host.
		for range 2 {
			go func() {
				for x := uint64(1); x != 0; x++ { // spins for centuries: x wraps only after 2^64 steps
				}
			}()
		}
		select {}
	case "sleep":
		select {}
	}
	return fmt.Errorf("unknown offender mode %q", args[0])
}

func lookupDemoUser() (platform.Account, bool) {
	acc := platform.NewAccounts()
	if acc.Refresh() != nil {
		return platform.Account{}, false
	}
	return acc.Lookup(demoUser)
}

// removeDemoUser kills every process of the demo user and deletes it.
func removeDemoUser() error {
	a, ok := lookupDemoUser()
	if !ok {
		return nil
	}
	if !strings.HasPrefix(a.Name, "gdt-") || a.UID < 1000 {
		return fmt.Errorf("refusing to remove %s (uid %d)", a.Name, a.UID)
	}
	deadline := time.Now().Add(10 * time.Second)
	for killAllOf(a.UID) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of %s survive SIGKILL", demoUser)
		}
		time.Sleep(50 * time.Millisecond) // let the kernel reap them
	}
	if out, err := exec.Command("userdel", demoUser).CombinedOutput(); err != nil {
		return fmt.Errorf("userdel %s: %v: %s", demoUser, err, bytes.TrimSpace(out))
	}
	return nil
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
