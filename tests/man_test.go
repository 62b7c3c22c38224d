//go:build linux

package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var manPages = []string{"../man/guardd.8", "../man/guardd.hcl.5"}

// groffWarnings renders a page the way man(1) would and returns what groff
// warns about (-ww: every warning).
func groffWarnings(t *testing.T, page string) string {
	t.Helper()
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("no groff (Debian: groff-base): man pages not rendered")
	}
	cmd := exec.Command(groff, "-man", "-ww", "-z", page)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("groff %s: %v\n%s", page, err, out)
	}
	return string(out)
}

// TestManPagesRender: both pages render without a single groff warning.
// The control, a page with an unknown macro, must warn.
func TestManPagesRender(t *testing.T) {
	for _, p := range manPages {
		if w := groffWarnings(t, p); w != "" {
			t.Errorf("%s renders with warnings:\n%s", p, w)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.8")
	if err := os.WriteFile(bad, []byte(".TH BAD 8\n.SH NAME\nbad \\- bad\n.XYZZY\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if groffWarnings(t, bad) == "" {
		t.Error("control: groff -ww did not warn about an unknown macro; the check above proves nothing")
	}
}

// TestManPagesLint: mandoc's linter finds nothing, style included (long
// lines, bad macro use). The control: a page with a bad section number
// must not pass.
func TestManPagesLint(t *testing.T) {
	mandoc, err := exec.LookPath("mandoc")
	if err != nil {
		t.Skip("no mandoc (Debian: mandoc)")
	}
	for _, p := range manPages {
		if out, err := exec.Command(mandoc, "-Tlint", p).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("mandoc -Tlint %s: %v\n%s", p, err, out)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.8")
	if err := os.WriteFile(bad, []byte(".TH BAD 9x\n.SH NAME\nbad \\- bad\n.SH\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mandoc, "-Tlint", bad).CombinedOutput(); err == nil && len(out) == 0 {
		t.Error("control: mandoc -Tlint passed a broken page; the check above proves nothing")
	}
}

// TestManPageGuarddCoversCLI: guardd(8) documents every command of
// `guardd help`, every flag of `guardd run -h` and the signals guardd
// handles, so a new command or flag without its man page fails here.
func TestManPageGuarddCoversCLI(t *testing.T) {
	b, err := os.ReadFile("../man/guardd.8")
	if err != nil {
		t.Fatal(err)
	}
	// roff escapes minus signs; compare with them plain.
	page := strings.ReplaceAll(string(b), `\-`, "-")

	help, _, _ := RunGuardd(t, "help")
	cmds := regexp.MustCompile(`(?m)^  guardd (?:\[)?([a-z-]+)`).FindAllStringSubmatch(help, -1)
	if len(cmds) < 5 {
		t.Fatalf("found only %d commands in guardd help:\n%s", len(cmds), help)
	}
	for _, c := range cmds {
		if !strings.Contains(page, ".B "+c[1]) && !strings.Contains(page, ".BR "+c[1]) && !strings.Contains(page, ".BI "+c[1]) {
			t.Errorf("guardd(8) has no entry for the command %q", c[1])
		}
	}

	_, runHelp, _ := RunGuardd(t, "run", "-h")
	flags := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(runHelp, -1)
	if len(flags) < 5 {
		t.Fatalf("found only %d flags in guardd run -h:\n%s", len(flags), runHelp)
	}
	for _, f := range flags {
		if !strings.Contains(page, "--"+f[1]) {
			t.Errorf("guardd(8) does not document the flag --%s of guardd run", f[1])
		}
	}
	for _, s := range []string{"SIGHUP", "SIGUSR1", "SIGTERM", "SIGINT"} {
		if !strings.Contains(page, s) {
			t.Errorf("guardd(8) does not document %s", s)
		}
	}
	for _, sec := range []string{"COMMANDS", "OPTIONS", "SIGNALS", "FILES", "ENVIRONMENT", "EXIT STATUS"} {
		if !strings.Contains(page, ".SH "+sec) && !strings.Contains(page, ".SH \""+sec+"\"") {
			t.Errorf("guardd(8) has no %s section", sec)
		}
	}
}

// TestUnitDocumentationPagesExist: every man: page the systemd unit's
// Documentation= names is one of ours.
func TestUnitDocumentationPagesExist(t *testing.T) {
	b, err := os.ReadFile("../systemd/guardd.service")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`man:([a-z.]+)\(([0-9])\)`).FindAllStringSubmatch(string(b), -1)
	if len(refs) == 0 {
		t.Fatal("the unit's Documentation= names no man page")
	}
	for _, r := range refs {
		if _, err := os.Stat(filepath.Join("../man", r[1]+"."+r[2])); err != nil {
			t.Errorf("the unit names man:%s(%s), which is not in man/: %v", r[1], r[2], err)
		}
	}
}
