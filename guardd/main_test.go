package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/guardd/guardd/policy"
)

func runCmd(args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.hcl")
	os.WriteFile(good, []byte("class \"c\" { uids = [\"1000-1999\"] }\nrule \"r\" {\n  class = \"c\"\n  when = proc.cpu_percent > 90\n  kill {}\n}\n"), 0o600)
	out, _, err := runCmd("check", good)
	if err != nil || !strings.Contains(out, "OK") {
		t.Errorf("valid policy: err %v, out %q", err, out)
	}

	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(bad, []byte("rule \"r\" {\n  class = \"nope\"\n  when = proc.cpu_precent > 90\n  renice { nice = 25 }\n}\n"), 0o600)
	_, stderr, err := runCmd("check", bad)
	if exitCode(err) != 1 {
		t.Fatalf("broken policy: exit %d (%v), want 1", exitCode(err), err)
	}
	for _, want := range []string{bad + ":3,10", "proc.cpu_percent", bad + ":4,19", "Nice value out of range"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("check output lacks %q:\n%s", want, stderr)
		}
	}

	if _, _, err := runCmd("check", filepath.Join(dir, "missing.hcl")); exitCode(err) != 1 {
		t.Errorf("missing file: exit %d, want 1", exitCode(err))
	}
}

// TestCheckRunsComponentChecks: what would refuse a reload outside the
// policy file (here a broken mail template) fails `guardd check` too.
func TestCheckRunsComponentChecks(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "templates")
	os.Mkdir(tmpl, 0o755)
	pol := filepath.Join(dir, "policy.hcl")
	os.WriteFile(pol, []byte(`class "c" { uids = ["1000-1999"] }
rule "hog" {
  class = "c"
  when  = proc.cpu_percent > 90
  notify { template = "hog" }
}
report {
  mail {
    to        = "{{.User}}@example.jp"
    templates = "`+tmpl+`"
  }
}
`), 0o600)
	write := func(body string) {
		if err := os.WriteFile(filepath.Join(tmpl, "hog.en.tmpl"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Subject: {{.Rule}} on {{.Host}}\n\nYour process {{.Process.PID}} was reniced.\n")
	if out, stderr, err := runCmd("check", pol); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("good template: err %v, out %q, stderr %q", err, out, stderr)
	}
	write("Subject: {{.Rule}\n\nbroken\n")
	_, stderr, err := runCmd("check", pol)
	if exitCode(err) != 1 {
		t.Fatalf("broken template: exit %d (%v), want 1; stderr %q", exitCode(err), err, stderr)
	}
	if !strings.Contains(stderr, "hog.en") {
		t.Errorf("the error does not name the template:\n%s", stderr)
	}
}

func TestDefaultPolicyCommand(t *testing.T) {
	out, _, err := runCmd("default-policy")
	if err != nil || out != string(policy.DefaultSource) {
		t.Errorf("default-policy: err %v, printed %d bytes, want the %d of the embedded default", err, len(out), len(policy.DefaultSource))
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"run", "--mode", "sometimes"}, {"run", "--log-format", "xml"}, {"explain"}, {"explain", "abc"}, {"run", "--audit-log", "relative.jsonl"}} {
		if _, _, err := runCmd(args...); exitCode(err) != 2 {
			t.Errorf("%v: exit %d (%v), want 2", args, exitCode(err), err)
		}
	}
}

func TestVersionCommand(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "1.2.3", "0123abc"
	out, _, err := runCmd("version")
	if err != nil {
		t.Fatal(err)
	}
	// The toolchain's vcs.revision wins over main.commit when it is there.
	if !strings.HasPrefix(out, "guardd 1.2.3 commit ") || !strings.Contains(out, " go1.") {
		t.Errorf("version: %q", out)
	}
	want := "commit 0123abc"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				want = "commit " + s.Value
			}
		}
	}
	if !strings.Contains(out, want) {
		t.Errorf("version: %q does not say %q", out, want)
	}
}
