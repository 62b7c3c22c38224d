//go:build linux

package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runCheck runs the real binary's `guardd check` with extra environment.
func runCheck(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(guarddBin, append([]string{"check"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(Deadline, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

// TestCheckEveryErrorInOnePass: a syntax error in one file of a policy
// directory hides none of the others' mistakes.
func TestCheckEveryErrorInOnePass(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "policy.d")
	os.Mkdir(dir, 0o755)
	broken := "class \"web\" {\n  uids = [\"1000-1999\"]\n}\nrule \"x\" {\n  when = \n}\n"
	rules := `rule "cpu-hog" {
  class = "customerz"
  when  = proc.cpu_percent > 80
  report {}
}
rule "web-hog" {
  class = "web"
  when  = proc.cpu_percent > 80
  for   = "5x"
  report {}
}
`
	writeFile(t, filepath.Join(dir, "10-broken.hcl"), broken)
	writeFile(t, filepath.Join(dir, "20-rules.hcl"), rules)
	_, errOut, code := runCheck(t, nil, dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, errOut)
	}
	for _, want := range []string{
		filepath.Join(dir, "10-broken.hcl") + ":5,", // the syntax error
		filepath.Join(dir, "20-rules.hcl") + ":2,",  // the unknown class, despite it
		filepath.Join(dir, "20-rules.hcl") + ":9,",  // the bad duration
		"3 error(s)",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("guardd check does not say %q:\n%s", want, errOut)
		}
	}
	// "web" is defined in the broken file: no error for it.
	if strings.Contains(errOut, `no class "web"`) {
		t.Errorf("a class of the broken file reported unknown:\n%s", errOut)
	}
	// Control: mended, it passes.
	writeFile(t, filepath.Join(dir, "10-broken.hcl"), "class \"web\" {\n  uids = [\"1000-1999\"]\n}\nclass \"customerz\" {\n  uids = [\"2000-2999\"]\n}\n")
	writeFile(t, filepath.Join(dir, "20-rules.hcl"), strings.Replace(rules, `"5x"`, `"5s"`, 1))
	if out, errOut, code := runCheck(t, nil, dir); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("mended: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestCheckPolicyWritableByOthers: like sudo for sudoers, a policy (or a
// directory above it) that someone other than root can change is an
// error; root's own 0644 file is fine.
func TestCheckPolicyWritableByOthers(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.hcl")
	writeFile(t, path, Header(dir, "1s")+Class(u))
	os.Chmod(path, 0o644)
	if out, errOut, code := runCheck(t, nil, path); code != 0 {
		t.Fatalf("root's 0644 policy: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	cases := []struct {
		name  string
		setup func()
		want  string
	}{
		{"world-writable", func() { os.Chmod(path, 0o666) }, path + " is world-writable"},
		{"group-writable", func() { os.Chmod(path, 0o664); os.Chown(path, 0, int(u.GID)) }, fmt.Sprintf("(gid %d): its members can change", u.GID)},
		{"owned by a customer", func() { os.Chown(path, int(u.UID), 0) }, path + " is owned by user " + u.Name},
		{"directory writable by a customer", func() { os.Chown(dir, int(u.UID), 0) }, dir + " is owned by user " + u.Name},
	}
	for _, c := range cases {
		c.setup()
		_, errOut, code := runCheck(t, nil, path)
		if code != 1 || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "chmod go-w") {
			t.Errorf("%s: exit %d, want 1 and %q:\n%s", c.name, code, c.want, errOut)
		}
		os.Chmod(path, 0o644)
		os.Chown(path, 0, 0)
		os.Chown(dir, 0, 0)
	}
}

// TestCheckUnknownAccounts: users and groups that do not exist are
// warnings with file:line, and the policy is still accepted.
func TestCheckUnknownAccounts(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.hcl")
	text := Header(dir, "1s") + fmt.Sprintf(`class "c" {
  users  = [%q, "gdt-no-such-user"]
  groups = ["gdt-no-such-group", "root"]
}
protect {
  users = ["gdt-no-such-admin"]
}
`, u.Name)
	writeFile(t, path, text)
	out, errOut, code := runCheck(t, nil, path)
	if code != 0 || !strings.Contains(out, "OK") || !strings.Contains(out, "3 warning(s)") {
		t.Fatalf("exit %d, stdout %q, want 0, OK and 3 warnings; stderr:\n%s", code, out, errOut)
	}
	for _, name := range []string{"gdt-no-such-user", "gdt-no-such-group", "gdt-no-such-admin"} {
		line, col := lineCol(text, `"`+name+`"`)
		if want := fmt.Sprintf("warning: %s:%d,%d: ", path, line, col); !strings.Contains(errOut, want) || !strings.Contains(errOut, name) {
			t.Errorf("no warning at %s for %s:\n%s", want, name, errOut)
		}
	}
	for _, exists := range []string{u.Name, "root"} {
		if strings.Contains(errOut, `"`+exists+`"`) {
			t.Errorf("a warning about %s, which exists:\n%s", exists, errOut)
		}
	}
}

// TestCheckExternalFileLines: errors in a mail template and in the
// address map carry the file and line they are on.
func TestCheckExternalFileLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "templates")
	os.Mkdir(tmpl, 0o755)
	mapFile := filepath.Join(dir, "addresses")
	path := filepath.Join(dir, "policy.hcl")
	writeFile(t, path, Header(dir, "1s")+`class "c" {
  uids = ["1000-1999"]
}
rule "hog" {
  class = "c"
  when  = proc.cpu_percent > 90
  notify {}
}
report {
  mail {
    map       = "`+mapFile+`"
    templates = "`+tmpl+`"
  }
}
`)
	writeFile(t, filepath.Join(tmpl, "hog.en.tmpl"), "Subject: {{.Rule}} on {{.Host}}\n\nline 3\nline 4\n{{ .Rule | nosuchfunc }}\n")
	writeFile(t, mapFile, "alice: alice@example.jp\nbob bob-at-example\n# a comment\ncarol: c@example.jp\ncarol: d@example.jp\n")
	_, errOut, code := runCheck(t, nil, path)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, errOut)
	}
	for _, want := range []string{
		filepath.Join(tmpl, "hog.en.tmpl") + ":5: ",
		mapFile + ":2: ",
		mapFile + ":5: ",
		"3 error(s)",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("guardd check does not say %q:\n%s", want, errOut)
		}
	}
	// Control: mended, it passes.
	writeFile(t, filepath.Join(tmpl, "hog.en.tmpl"), "Subject: {{.Rule}} on {{.Host}}\n\nbody\n")
	writeFile(t, mapFile, "alice: alice@example.jp\n")
	if out, errOut, code := runCheck(t, nil, path); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("mended: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestCheckNotifyHintIsValidHCL: the hint for a notify step without mail
// settings shows HCL that, pasted into the policy, makes it valid (it
// once suggested a one-line block with a nested block, which HCL refuses).
func TestCheckNotifyHintIsValidHCL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.hcl")
	text := Header(dir, "1s") + `class "c" {
  uids = ["1000-1999"]
}
rule "hog" {
  class = "c"
  when  = proc.cpu_percent > 90
  notify {}
}
`
	writeFile(t, path, text)
	_, errOut, code := runCheck(t, nil, path)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, errOut)
	}
	hint := regexp.MustCompile(`(?ms)^report \{\n.*?^\}$`).FindString(errOut)
	if hint == "" {
		t.Fatalf("no report block in the hint:\n%s", errOut)
	}
	writeFile(t, path, text+hint+"\n")
	if out, errOut, code := runCheck(t, nil, path); code != 0 {
		t.Errorf("the policy with the hint's block: exit %d, stdout %q, stderr:\n%s\nhint:\n%s", code, out, errOut, hint)
	}
}

// TestCheckWatchdog: check warns when the watchdog it can see is too
// short to be met, and not for the shipped 30 s whatever the interval.
func TestCheckWatchdog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.hcl")
	writeFile(t, path, Header(dir, "40s"))
	_, errOut, code := runCheck(t, []string{"WATCHDOG_USEC=2000000"}, path)
	if code != 0 || !strings.Contains(errOut, "warning: WATCHDOG_USEC: a watchdog of 2s") || !strings.Contains(errOut, "at least 5s") {
		t.Errorf("WATCHDOG_USEC=2s: exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = runCheck(t, []string{"WATCHDOG_USEC=30000000"}, path)
	if code != 0 || strings.Contains(errOut, "watchdog") {
		t.Errorf("WATCHDOG_USEC=30s with interval 40s: exit %d, stderr:\n%s", code, errOut)
	}
}

// TestVersionCommand: the version, the commit and the Go version.
func TestVersionCommand(t *testing.T) {
	t.Parallel()
	out, _, code := RunGuardd(t, "version")
	if code != 0 || !regexp.MustCompile(`^guardd \S+ commit \S+.* go1\.\d+`).MatchString(out) {
		t.Errorf("guardd version: exit %d, %q", code, out)
	}
}
