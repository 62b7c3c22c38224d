// Package rcd tests the FreeBSD rc.d script: it passes sh -n, and run
// under a stand-in for /etc/rc.subr (testdata/rc.subr, which follows
// run_rc_command's logic but runs nothing) it asks for exactly the
// commands a FreeBSD admin expects, for start, stop, restart, reload,
// check and status. The stand-in is not FreeBSD's rc.subr: this shows the
// script's logic, not that FreeBSD runs it (see README.md, FreeBSD).
package rcd

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestSyntax(t *testing.T) {
	t.Parallel()
	if out, err := exec.Command("sh", "-n", "guardd").CombinedOutput(); err != nil {
		t.Fatalf("sh -n guardd: %v\n%s", err, out)
	}
	fi, err := os.Stat("guardd")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("rc.d/guardd is not executable (mode %v)", fi.Mode())
	}
	b, _ := os.ReadFile("guardd")
	for _, want := range []string{
		"#!/bin/sh\n", "\n# PROVIDE: guardd\n", "\n# REQUIRE: LOGIN FILESYSTEMS syslogd\n", "\n# KEYWORD: shutdown\n",
		"\n. /etc/rc.subr\n", "\nrcvar=\"guardd_enable\"\n", "\nload_rc_config \"$name\"\n", "\nrun_rc_command \"$1\"\n",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("rc.d/guardd lacks %q", want)
		}
	}
}

// rc is one run of the script under the stand-in.
type rc struct {
	t          *testing.T
	dir        string
	conf       []string // rc.conf lines
	procs      []string // the process table: "PIDFILE PID ARGV0"
	checkFails bool     // the fake guardd's check fails
	policy     string   // guardd_policy; created unless missing
	missing    bool
	fakeGuardd string
	out        string
	code       int
	log        []string
	procsLeft  []string
}

func newRC(t *testing.T, enabled bool) *rc {
	t.Helper()
	dir := t.TempDir()
	r := &rc{t: t, dir: dir, policy: filepath.Join(dir, "policy.hcl"), fakeGuardd: filepath.Join(dir, "guardd")}
	if enabled {
		r.conf = append(r.conf, `guardd_enable="YES"`)
	}
	return r
}

// run runs `service guardd ARG` (sh rc.d/guardd ARG).
func (r *rc) run(arg string) *rc {
	t := r.t
	t.Helper()
	script, err := os.ReadFile("guardd")
	if err != nil {
		t.Fatal(err)
	}
	standIn, err := filepath.Abs(filepath.Join("testdata", "rc.subr"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(script), "\n. /etc/rc.subr\n"); n != 1 {
		t.Fatalf("rc.d/guardd sources /etc/rc.subr %d times", n)
	}
	script = []byte(strings.Replace(string(script), "\n. /etc/rc.subr\n", "\n. "+standIn+"\n", 1))
	scriptPath := filepath.Join(r.dir, "rc.d-guardd")
	write(t, scriptPath, string(script), 0o755)
	write(t, r.fakeGuardd, `#!/bin/sh
echo "guardd $*" >> "$RCSUBR_LOG"
if [ ! -e "$2" ]; then
	echo "guardd: $2: no such file or directory" >&2
	exit 1
fi
if [ "$FAKE_CHECK_FAILS" = 1 ]; then
	echo "$2:3,7-9: Unknown variable; There is no variable named \"proc.cpu\"." >&2
	exit 1
fi
echo "$2: OK: 2 class(es), 5 rule(s), mode enforce, interval 1s"
`, 0o755)
	conf := append([]string{"guardd_command=" + shQuote(r.fakeGuardd)}, r.conf...)
	if r.policy != "" {
		conf = append(conf, "guardd_policy="+shQuote(r.policy))
		if !r.missing {
			write(t, r.policy, "rule \"x\" {}\n", 0o644)
		}
	}
	write(t, filepath.Join(r.dir, "rc.conf"), strings.Join(conf, "\n")+"\n", 0o644)
	procs := filepath.Join(r.dir, "procs")
	write(t, procs, strings.Join(r.procs, "\n")+"\n", 0o644)
	logPath := filepath.Join(r.dir, "log")
	os.Remove(logPath)

	cmd := exec.Command("sh", scriptPath, arg)
	cmd.Dir = r.dir
	cmd.Env = []string{
		"PATH=/usr/bin:/bin", "RCSUBR_LOG=" + logPath, "RCSUBR_CONF=" + filepath.Join(r.dir, "rc.conf"),
		"RCSUBR_PROCS=" + procs, "FAKE_CHECK_FAILS=" + map[bool]string{true: "1", false: "0"}[r.checkFails],
	}
	out, err := cmd.CombinedOutput()
	r.out, r.code = string(out), 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	r.log = nil
	if b, err := os.ReadFile(logPath); err == nil {
		r.log = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	b, _ := os.ReadFile(procs)
	r.procsLeft = strings.Fields(string(b))
	return r
}

func write(t *testing.T, path, s string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// expect checks the log (with the temporary directory written as DIR)
// and the exit code.
func (r *rc) expect(code int, log ...string) {
	r.t.Helper()
	got := make([]string, len(r.log))
	for i, l := range r.log {
		got[i] = strings.ReplaceAll(l, r.dir, "DIR")
	}
	if r.code != code || !slices.Equal(got, log) {
		r.t.Errorf("exit %d, commands:\n  %s\nwant exit %d, commands:\n  %s\noutput:\n%s",
			r.code, strings.Join(got, "\n  "), code, strings.Join(log, "\n  "), r.out)
	}
}

func (r *rc) outputHas(re string) {
	r.t.Helper()
	if !regexp.MustCompile(re).MatchString(r.out) {
		r.t.Errorf("output does not match %q:\n%s", re, r.out)
	}
}

// daemonRun is what start asks rc.subr to run: daemon(8) supervising
// guardd, with guardd_flags given to guardd and nothing between daemon and
// its own flags.
func daemonRun(policy string, flags ...string) string {
	args := []string{"/usr/sbin/daemon", "-r", "-R", "2", "-S", "-l", "daemon", "-T", "guardd",
		"-P", "/var/run/guardd.pid", "-p", "/var/run/guardd.child.pid", "DIR/guardd", "run", "--policy", policy}
	args = append(args, flags...)
	return "run: [" + strings.Join(args, "] [") + "]"
}

const (
	checkPolicy = "precmd guardd_check"
	supervisor  = "/var/run/guardd.pid 4100 daemon:"
	child       = "/var/run/guardd.child.pid 4101 "
)

func TestStart(t *testing.T) {
	t.Parallel()
	newRC(t, true).run("start").expect(0,
		checkPolicy,
		"guardd check DIR/policy.hcl",
		daemonRun("DIR/policy.hcl"),
		"oomprotect ALL")

	// Not enabled: nothing runs, and rc.subr says how to start it anyway.
	r := newRC(t, false).run("start")
	r.expect(0)
	r.outputHas(`Cannot 'start' guardd\. Set guardd_enable to YES`)
	newRC(t, false).run("onestart").expect(0, checkPolicy, "guardd check DIR/policy.hcl", daemonRun("DIR/policy.hcl"), "oomprotect ALL")

	// guardd_flags reach guardd, not daemon(8); a policy path with spaces
	// stays one argument; the other knobs reach daemon(8) and rc.subr.
	r = newRC(t, true)
	r.policy = filepath.Join(r.dir, "my policies")
	r.conf = append(r.conf, `guardd_flags="--mode monitor --log-level debug"`, `guardd_restart_delay=5`,
		`guardd_syslog_facility=local3`, `guardd_oomprotect=NO`)
	r.run("start").expect(0,
		checkPolicy,
		"guardd check DIR/my policies",
		strings.NewReplacer("[-R] [2]", "[-R] [5]", "[-l] [daemon]", "[-l] [local3]").Replace(
			daemonRun("DIR/my policies", "--mode", "monitor", "--log-level", "debug")),
		"oomprotect NO")

	// A policy that does not validate: nothing starts.
	r = newRC(t, true)
	r.checkFails = true
	r.run("start").expect(1, checkPolicy, "guardd check DIR/policy.hcl", "precmd failed")
	r.outputHas(`Unknown variable`)

	// No policy file: the check refuses.
	r = newRC(t, true)
	r.missing = true
	r.run("start").expect(1, checkPolicy, "guardd check DIR/policy.hcl", "precmd failed")
	r.outputHas(`policy\.hcl: no such file`)

	// The default policy path, where the package installs it.
	r = newRC(t, true)
	r.policy = ""
	r.run("start").expect(1, checkPolicy, "guardd check /usr/local/etc/guardd/policy.hcl", "precmd failed")

	// Already running.
	r = newRC(t, true)
	r.procs = []string{supervisor}
	r.run("start").expect(1)
	r.outputHas(`guardd already running\? \(pid=4100\)`)
}

func TestStopStatus(t *testing.T) {
	t.Parallel()
	r := newRC(t, true)
	r.procs = []string{supervisor, child + "DIR/guardd"}
	r.procs[1] = strings.ReplaceAll(r.procs[1], "DIR", r.dir)
	// stop signals the supervisor, which passes SIGTERM on to guardd and
	// does not restart it.
	r.run("stop").expect(0, "kill -TERM 4100", "wait_for_pids 4100")

	r = newRC(t, true)
	r.procs = []string{supervisor}
	r.run("status").expect(0)
	r.outputHas(`guardd is running as pid 4100\.`)

	r = newRC(t, true)
	r.run("status").expect(1)
	r.outputHas(`guardd is not running\.`)
	newRC(t, true).run("stop").expect(1)

	// A pidfile whose pid now names another program is not guardd's.
	r = newRC(t, true)
	r.procs = []string{"/var/run/guardd.pid 4100 /usr/local/bin/perl"}
	r.run("stop").expect(1)
}

func TestReload(t *testing.T) {
	t.Parallel()
	running := func(r *rc) {
		r.procs = []string{supervisor, child + r.fakeGuardd}
	}
	// reload checks the policy, then sends SIGHUP to guardd itself (not
	// to daemon(8), which would not pass it on).
	r := newRC(t, true)
	running(r)
	r.run("reload").expect(0, checkPolicy, "guardd check DIR/policy.hcl", "cmd guardd_reload", "kill -HUP 4101")

	// A policy that does not validate: guardd keeps running on the old one.
	r = newRC(t, true)
	running(r)
	r.checkFails = true
	r.run("reload").expect(1, checkPolicy, "guardd check DIR/policy.hcl", "precmd failed")

	// Not running, or a stale child pidfile: no signal to anyone.
	r = newRC(t, true)
	r.run("reload").expect(1, checkPolicy, "guardd check DIR/policy.hcl", "cmd guardd_reload")
	r.outputHas(`guardd is not running\.`)
	r = newRC(t, true)
	r.procs = []string{supervisor, child + "/usr/local/bin/perl"}
	r.run("reload").expect(1, checkPolicy, "guardd check DIR/policy.hcl", "cmd guardd_reload")
}

func TestRestartAndCheck(t *testing.T) {
	t.Parallel()
	// restart checks first, then stops and starts (the start checks again).
	r := newRC(t, true)
	r.procs = []string{supervisor}
	r.run("restart").expect(0,
		checkPolicy, "guardd check DIR/policy.hcl",
		"kill -TERM 4100", "wait_for_pids 4100",
		checkPolicy, "guardd check DIR/policy.hcl",
		daemonRun("DIR/policy.hcl"), "oomprotect ALL")

	// A broken policy: restart refuses before it stops the running guardd.
	r = newRC(t, true)
	r.procs = []string{supervisor}
	r.checkFails = true
	r.run("restart").expect(1, checkPolicy, "guardd check DIR/policy.hcl", "precmd failed")
	if !slices.Contains(r.procsLeft, "4100") {
		t.Error("a failed restart stopped guardd")
	}

	// check runs guardd check on the configured policy and passes its
	// verdict on.
	r = newRC(t, true)
	r.run("check").expect(0, "cmd guardd_check", "guardd check DIR/policy.hcl")
	r.outputHas(`policy\.hcl: OK`)
	r = newRC(t, true)
	r.checkFails = true
	r.run("check").expect(1, "cmd guardd_check", "guardd check DIR/policy.hcl")

	// Unknown commands get rc.subr's usage, listing reload and check.
	r = newRC(t, true).run("frobnicate")
	r.expect(1)
	r.outputHas(`Usage: .*reload check`)
}
