//go:build linux

package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guardd/guardd/report"
)

// Event is one audit log line.
type Event = report.Event

// DefaultInterval is the tick of a test daemon unless a test says otherwise.
const DefaultInterval = "200ms"

// Config describes a test daemon.
type Config struct {
	Dir      string   // audit log, state and policy live here; "" = a new t.TempDir()
	Interval string   // "" = DefaultInterval
	Body     string   // the policy after the guardd block: classes, protect, rules
	Flags    []string // extra command-line flags
	Env      []string // extra environment, e.g. NOTIFY_SOCKET
	// Wrap runs guardd through a command that execs it with the arguments
	// it is given (e.g. unshare, to give it a mount namespace of its own).
	Wrap []string
	Bin  string // the guardd binary; "" = the one TestMain built
}

// Header is the standard guardd block of a test policy: everything guardd
// writes stays inside dir.
func Header(dir, interval string) string {
	return fmt.Sprintf("guardd {\n  interval  = %q\n  audit_log = %q\n  state_dir = %q\n}\n\n",
		interval, filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "state"))
}

// Class returns a class "c" of exactly the given test users: a test's
// policy never names anyone else's processes.
func Class(users ...*User) string {
	var names []string
	for _, u := range users {
		names = append(names, fmt.Sprintf("%q", u.Name))
	}
	return fmt.Sprintf("class \"c\" {\n  users = [%s]\n}\n\n", strings.Join(names, ", "))
}

// LogLine is one line of guardd's JSON log.
type LogLine struct {
	Time  time.Time
	Level string
	Msg   string
	Attrs map[string]any // everything, time, level and msg included
	Raw   string
}

// Guardd is a running test daemon.
type Guardd struct {
	Cmd        *exec.Cmd
	Dir        string
	PolicyPath string
	AuditPath  string
	StateDir   string
	Interval   string

	done    chan struct{} // closed when the process has exited and its log is read
	waitErr error

	mu      sync.Mutex // guards the fields below
	lines   []LogLine
	changed chan struct{} // closed and replaced on every new line
	stopped bool
}

// StartGuardd starts a daemon on Header(dir, DefaultInterval) + body, in
// --log-format json, and waits for "guardd started". When the test ends it
// is stopped with SIGTERM and must exit 0.
func StartGuardd(t testing.TB, body string, flags ...string) *Guardd {
	t.Helper()
	return StartGuarddConfig(t, Config{Body: body, Flags: flags})
}

// StartGuarddConfig starts a daemon as c describes.
func StartGuarddConfig(t testing.TB, c Config) *Guardd {
	t.Helper()
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	if c.Interval == "" {
		c.Interval = DefaultInterval
	}
	g := &Guardd{
		Dir:        c.Dir,
		PolicyPath: filepath.Join(c.Dir, "policy.hcl"),
		AuditPath:  filepath.Join(c.Dir, "audit.jsonl"),
		StateDir:   filepath.Join(c.Dir, "state"),
		Interval:   c.Interval,
		done:       make(chan struct{}),
		changed:    make(chan struct{}),
	}
	if _, err := os.Stat(g.PolicyPath); err != nil || c.Body != "" {
		g.SetPolicy(t, c.Body)
	}
	args := append([]string{"--policy", g.PolicyPath, "--log-format", "json"}, c.Flags...)
	bin := guarddBin
	if c.Bin != "" {
		bin = c.Bin
	}
	g.Cmd = exec.Command(bin, args...)
	if len(c.Wrap) > 0 {
		g.Cmd = exec.Command(c.Wrap[0], append(append(c.Wrap[1:], bin), args...)...)
	}
	g.Cmd.Dir = "/"
	if c.Env != nil {
		g.Cmd.Env = append(os.Environ(), c.Env...)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	g.Cmd.Stderr = pw
	g.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := g.Cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		t.Fatal(err)
	}
	pw.Close()
	logDone := readLines(pr, g.addLine)
	go func() {
		g.waitErr = g.Cmd.Wait()
		<-logDone
		close(g.done)
	}()
	t.Cleanup(func() {
		g.Stop(t)
		if t.Failed() {
			t.Logf("guardd %s (pid %d) log:\n%s", strings.Join(args, " "), g.Cmd.Process.Pid, g.Log())
			if b, err := os.ReadFile(g.AuditPath); err == nil {
				t.Logf("audit log %s:\n%s", g.AuditPath, b)
			}
		}
	})
	g.WaitLog(t, Msg("guardd started"), Deadline)
	return g
}

func (g *Guardd) addLine(raw string) {
	l := LogLine{Raw: raw}
	if json.Unmarshal([]byte(raw), &l.Attrs) == nil {
		l.Level, _ = l.Attrs["level"].(string)
		l.Msg, _ = l.Attrs["msg"].(string)
		if s, ok := l.Attrs["time"].(string); ok {
			l.Time, _ = time.Parse(time.RFC3339Nano, s)
		}
	}
	g.mu.Lock()
	g.lines = append(g.lines, l)
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
}

// SetPolicy replaces the policy file with Header + body the way editors
// do: write a temp file in the same directory, rename it over.
func (g *Guardd) SetPolicy(t testing.TB, body string) {
	t.Helper()
	g.SetPolicyText(t, Header(g.Dir, g.Interval)+body)
}

// SetPolicyText replaces the whole policy file (atomically, by rename).
func (g *Guardd) SetPolicyText(t testing.TB, text string) {
	t.Helper()
	tmp := filepath.Join(g.Dir, ".policy.hcl.tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, g.PolicyPath); err != nil {
		t.Fatal(err)
	}
}

// Policy returns the current policy text.
func (g *Guardd) Policy(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(g.PolicyPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// RuleAt returns "FILE:LINE" of a rule in the current policy, as the audit
// log's rule_at should say.
func (g *Guardd) RuleAt(t testing.TB, rule string) string {
	t.Helper()
	return fmt.Sprintf("%s:%d", g.PolicyPath, LineOf(t, g.Policy(t), fmt.Sprintf("rule %q", rule)))
}

// LineOf returns the 1-based line of text where sub first occurs.
func LineOf(t testing.TB, text, sub string) int {
	t.Helper()
	i := strings.Index(text, sub)
	if i < 0 {
		t.Fatalf("%q not in the policy", sub)
	}
	return strings.Count(text[:i], "\n") + 1
}

// Reload sends SIGHUP.
func (g *Guardd) Reload(t testing.TB) {
	t.Helper()
	if err := g.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// Stop sends SIGTERM and fails the test unless guardd exits 0 within
// StopDeadline. Calling it again is a no-op.
func (g *Guardd) Stop(t testing.TB) {
	t.Helper()
	g.mu.Lock()
	stopped := g.stopped
	g.stopped = true
	g.mu.Unlock()
	if stopped {
		return
	}
	select {
	case <-g.done:
		t.Errorf("guardd exited before it was stopped: %v", g.waitErr)
		return
	default:
	}
	g.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(StopDeadline):
		g.Cmd.Process.Kill()
		<-g.done
		t.Errorf("guardd did not exit within %s of SIGTERM", StopDeadline)
		return
	}
	if g.waitErr != nil {
		t.Errorf("guardd exited with %v after SIGTERM, want exit 0", g.waitErr)
	}
	if log := g.Log(); strings.Contains(log, "WARNING: DATA RACE") || strings.Contains(log, "panic:") {
		t.Errorf("guardd reported a data race or panicked")
	}
}

// Exited reports whether the daemon process has exited.
func (g *Guardd) Exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// Log returns everything guardd wrote on stderr so far.
func (g *Guardd) Log() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var b strings.Builder
	for _, l := range g.lines {
		b.WriteString(l.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// Lines returns the log lines so far.
func (g *Guardd) Lines() []LogLine {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]LogLine(nil), g.lines...)
}

// Msg matches log lines whose message starts with prefix.
func Msg(prefix string) func(LogLine) bool {
	return func(l LogLine) bool { return strings.HasPrefix(l.Msg, prefix) }
}

// WaitLog waits for a log line matching pred (the lines so far included)
// and returns the first one.
func (g *Guardd) WaitLog(t testing.TB, pred func(LogLine) bool, deadline time.Duration) LogLine {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for seen := 0; ; {
		g.mu.Lock()
		lines, changed := g.lines[seen:], g.changed
		seen = len(g.lines)
		g.mu.Unlock()
		for _, l := range lines {
			if pred(l) {
				return l
			}
		}
		select {
		case <-changed:
		case <-g.done:
			if len(g.Lines()) > seen {
				continue // the last lines before exit
			}
			t.Fatalf("guardd exited (%v) before the expected log line", g.waitErr)
		case <-timer.C:
			t.Fatalf("no expected log line after %s", deadline)
		}
	}
}

// Audit returns the audit log so far.
func (g *Guardd) Audit(t testing.TB) []Event {
	t.Helper()
	evs, err := ReadAudit(g.AuditPath)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// ReadAudit parses an audit log; a missing file is an empty log.
func ReadAudit(path string) ([]Event, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b = b[:bytes.LastIndexByte(b, '\n')+1] // not a line being written right now
	var evs []Event
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("%s:%d: %w: %s", path, n, err, sc.Bytes())
		}
		evs = append(evs, ev)
	}
	return evs, sc.Err()
}

// WaitAudit waits for an audit line matching pred and returns the first.
func (g *Guardd) WaitAudit(t testing.TB, pred func(Event) bool, deadline time.Duration) Event {
	t.Helper()
	var found *Event
	ok := Eventually(deadline, func() bool {
		for _, ev := range g.Audit(t) {
			if pred(ev) {
				found = &ev
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no expected audit line after %s", deadline)
	}
	return *found
}

// Action matches audit lines of one rule, action and outcome about one
// process ("" and zero match anything).
func Action(rule, action, outcome string, pid int) func(Event) bool {
	return func(ev Event) bool {
		return (rule == "" || ev.Rule == rule) && (action == "" || ev.Action == action) &&
			(outcome == "" || ev.Outcome == outcome) && (pid == 0 || int(ev.PID) == pid)
	}
}

// RunGuardd runs a guardd subcommand to completion and returns its
// stdout, stderr and exit code.
func RunGuardd(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(guarddBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = time.Second
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), errb.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("guardd %s: %v", strings.Join(args, " "), err)
		}
		return out.String(), errb.String(), 0
	case <-time.After(Deadline):
		cmd.Process.Kill()
		<-done
		t.Fatalf("guardd %s still running after %s", strings.Join(args, " "), Deadline)
		return "", "", -1
	}
}
