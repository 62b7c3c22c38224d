//go:build linux

package tests

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// buildPackage runs `make KIND` (deb or rpm) into a temporary directory and
// returns the package's path and the version make gave it.
func buildPackage(t *testing.T, kind string) (pkg, version string) {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	tmp := t.TempDir()
	vars := []string{"BIN=" + filepath.Join(tmp, "guardd"), "BUILD=" + filepath.Join(tmp, "build"), "DIST=" + filepath.Join(tmp, "dist")}
	out, err := exec.Command("make", append([]string{"-C", "..", "-s", "version"}, vars...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("make version: %v\n%s", err, out)
	}
	version = strings.TrimSpace(string(out))
	if out, err := exec.Command("make", append([]string{"-C", "..", kind}, vars...)...).CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", kind, err, out)
	}
	matches, _ := filepath.Glob(filepath.Join(tmp, "dist", "*."+kind))
	if len(matches) != 1 {
		t.Fatalf("make %s made %v", kind, matches)
	}
	return matches[0], version
}

// debVersion is the rule the Makefile and the README state: dpkg accepts
// the version (it starts with a digit and has no '-': no Debian revision).
var debVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

// TestPackageDeb builds the .deb and checks what dpkg sees in it: the
// files, their modes, the conffiles, the version; then the packaged
// binary, unit, policy and man pages against the tree's own.
func TestPackageDeb(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("no dpkg-deb")
	}
	deb, version := buildPackage(t, "deb")
	if !debVersion.MatchString(version) {
		t.Errorf("version %q is not a valid Debian native version", version)
	}
	if !strings.Contains(filepath.Base(deb), "_"+version+"_") {
		t.Errorf("package %s is not named for version %s", deb, version)
	}
	if got := dpkgDeb(t, "-f", deb, "Version"); strings.TrimSpace(got) != version {
		t.Errorf("Version: %q, want %q", got, version)
	}

	listing := dpkgDeb(t, "-c", deb)
	want := map[string]string{ // path -> mode as dpkg-deb -c prints it
		"./usr/sbin/guardd":                                           "-rwxr-xr-x",
		"./lib/systemd/system/guardd.service":                         "-rw-r--r--",
		"./etc/guardd/":                                               "drwxr-x---",
		"./etc/guardd/policy.hcl":                                     "-rw-r-----",
		"./etc/logrotate.d/guardd":                                    "-rw-r--r--",
		"./usr/share/man/man8/guardd.8.gz":                            "-rw-r--r--",
		"./usr/share/man/man5/guardd.hcl.5.gz":                        "-rw-r--r--",
		"./usr/share/doc/guardd/README.md":                            "-rw-r--r--",
		"./usr/share/doc/guardd/copyright":                            "-rw-r--r--",
		"./usr/share/doc/guardd/changelog.gz":                         "-rw-r--r--",
		"./usr/share/doc/guardd/contrib/README.md":                    "-rw-r--r--",
		"./usr/share/doc/guardd/contrib/grafana/guardd-fleet.json":    "-rw-r--r--",
		"./usr/share/doc/guardd/contrib/prometheus/guardd-alerts.yml": "-rw-r--r--",
		"./usr/share/doc/guardd/contrib/prometheus/guardd-rules.yml":  "-rw-r--r--",
		"./usr/share/doc/guardd/contrib/fleet/hosts.html":             "-rw-r--r--",
		"./usr/share/lintian/overrides/guardd":                        "-rw-r--r--",
		"./var/lib/guardd/":                                           "drwxr-x---",
		"./var/log/guardd/":                                           "drwxr-x---",
	}
	seen := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(listing), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			continue
		}
		seen[f[len(f)-1]] = f[0]
		if owner := f[1]; owner != "root/root" {
			t.Errorf("%s is owned by %s", f[len(f)-1], owner)
		}
	}
	for p, mode := range want {
		if got, ok := seen[p]; !ok {
			t.Errorf("the package has no %s", p)
		} else if got != mode {
			t.Errorf("%s has mode %s, want %s", p, got, mode)
		}
	}

	conffiles := dpkgDeb(t, "-I", deb, "conffiles")
	for _, c := range []string{"/etc/guardd/policy.hcl", "/etc/logrotate.d/guardd"} {
		if !strings.Contains(conffiles, c+"\n") {
			t.Errorf("conffiles does not list %s:\n%s", c, conffiles)
		}
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		body := dpkgDeb(t, "-I", deb, script)
		if !strings.HasPrefix(body, "#!/bin/sh") {
			t.Errorf("%s is missing or not a shell script:\n%s", script, body)
		}
	}

	root := t.TempDir()
	dpkgDeb(t, "-x", deb, root)
	bin := filepath.Join(root, "usr/sbin/guardd")
	if out, err := exec.Command(bin, "version").Output(); err != nil || !strings.Contains(string(out), version) {
		t.Errorf("packaged guardd version: %q, %v; want it to name %s", out, err, version)
	}
	sameFile(t, filepath.Join(root, "lib/systemd/system/guardd.service"), "../systemd/guardd.service", false)
	sameFile(t, filepath.Join(root, "usr/share/man/man8/guardd.8.gz"), "../man/guardd.8", true)
	sameFile(t, filepath.Join(root, "usr/share/man/man5/guardd.hcl.5.gz"), "../man/guardd.hcl.5", true)

	policy := filepath.Join(root, "etc/guardd/policy.hcl")
	out, err := exec.Command(bin, "check", policy).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "mode monitor") {
		t.Errorf("packaged guardd check of the packaged policy: %v\n%s\n(want it valid and in monitor mode)", err, out)
	}
	def, err := exec.Command(bin, "default-policy").Output()
	if err != nil {
		t.Fatal(err)
	}
	packaged, err := os.ReadFile(policy)
	if err != nil {
		t.Fatal(err)
	}
	if err := monitorOf(def, packaged); err != nil {
		t.Errorf("the packaged policy is not the embedded default in monitor mode: %v", err)
	}
	// The control: the check above refuses the default itself (enforce
	// mode) and a policy that differs in a rule.
	if monitorOf(def, def) == nil {
		t.Error("control: the embedded default passed as its monitor-mode version")
	}
	if monitorOf(def, bytes.Replace(packaged, []byte("nice = 19"), []byte("nice = 10"), 1)) == nil {
		t.Error("control: a packaged policy with an edited rule passed")
	}
}

// monitorOf checks that packaged is the header, then def with exactly one
// line changed: the guardd block's mode, from "enforce" to "monitor".
func monitorOf(def, packaged []byte) error {
	header, err := os.ReadFile("../packaging/policy-header.hcl")
	if err != nil {
		return err
	}
	rest, ok := bytes.CutPrefix(packaged, header)
	if !ok {
		return fmt.Errorf("it does not start with packaging/policy-header.hcl")
	}
	a, b := strings.Split(string(def), "\n"), strings.Split(string(rest), "\n")
	if len(a) != len(b) {
		return fmt.Errorf("%d lines after the header, the default has %d", len(b), len(a))
	}
	var diffs []string
	for i := range a {
		if a[i] != b[i] {
			diffs = append(diffs, fmt.Sprintf("line %d: %q -> %q", i+1, a[i], b[i]))
		}
	}
	mode := regexp.MustCompile(`^  mode +=`)
	if len(diffs) != 1 {
		return fmt.Errorf("%d lines differ from the default, want 1 (the mode): %v", len(diffs), diffs)
	}
	for i := range a {
		if a[i] != b[i] && !(mode.MatchString(a[i]) && strings.Contains(a[i], `"enforce"`) && strings.Contains(b[i], `= "monitor"`)) {
			return fmt.Errorf("the line that differs is not the mode: %s", diffs[0])
		}
	}
	return nil
}

// TestPackageRPM builds the .rpm and checks that it lists the .deb's files,
// less what only Debian has, with the unit where rpm distributions keep
// units and the policy and logrotate file as config files.
func TestPackageRPM(t *testing.T) {
	rpm, err := exec.LookPath("rpm")
	if err != nil {
		t.Skip("no rpm (Debian: rpm)")
	}
	pkg, version := buildPackage(t, "rpm")
	out, err := exec.Command(rpm, "-qlp", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qlp: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	sort.Strings(got)
	want := []string{
		"/etc/guardd",
		"/etc/guardd/policy.hcl",
		"/etc/logrotate.d/guardd",
		"/usr/lib/systemd/system/guardd.service",
		"/usr/sbin/guardd",
		"/usr/share/doc/guardd/README.md",
		"/usr/share/doc/guardd/contrib/README.md",
		"/usr/share/doc/guardd/contrib/fleet/hosts.html",
		"/usr/share/doc/guardd/contrib/grafana/guardd-fleet.json",
		"/usr/share/doc/guardd/contrib/prometheus/guardd-alerts.yml",
		"/usr/share/doc/guardd/contrib/prometheus/guardd-rules.yml",
		"/usr/share/licenses/guardd/copyright",
		"/usr/share/man/man5/guardd.hcl.5.gz",
		"/usr/share/man/man8/guardd.8.gz",
		"/var/lib/guardd",
		"/var/log/guardd",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rpm -qlp lists\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	out, err = exec.Command(rpm, "-qpc", pkg).CombinedOutput()
	if err != nil || string(out) != "/etc/guardd/policy.hcl\n/etc/logrotate.d/guardd\n" {
		t.Errorf("rpm -qpc: %v\n%s", err, out)
	}
	out, err = exec.Command(rpm, "-qp", "--scripts", pkg).CombinedOutput()
	for _, s := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "preset guardd.service"} {
		if err != nil || !strings.Contains(string(out), s) {
			t.Errorf("rpm --scripts has no %q: %v\n%s", s, err, out)
		}
	}
	out, err = exec.Command(rpm, "-qp", "--qf", "%{VERSION}", pkg).CombinedOutput()
	if err != nil || string(out) != version {
		t.Errorf("rpm version %q, %v; want %q", out, err, version)
	}
}

// TestPortRCScriptIsTheTree: the FreeBSD port's files/guardd.in is
// rc.d/guardd with %%PREFIX%% for /usr/local, so the two cannot drift.
func TestPortRCScriptIsTheTree(t *testing.T) {
	tree, err := os.ReadFile("../rc.d/guardd")
	if err != nil {
		t.Fatal(err)
	}
	port, err := os.ReadFile("../packaging/freebsd/sysutils/guardd/files/guardd.in")
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.ReplaceAll(tree, []byte("/usr/local"), []byte("%%PREFIX%%")); !bytes.Equal(port, want) {
		t.Error("packaging/freebsd/sysutils/guardd/files/guardd.in differs from rc.d/guardd: regenerate it with\n" +
			"  sed 's|/usr/local|%%PREFIX%%|g' rc.d/guardd > packaging/freebsd/sysutils/guardd/files/guardd.in")
	}
}

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sameFile fails unless the packaged file (gunzipped if gz) is the tree's.
func sameFile(t *testing.T, packaged, tree string, gz bool) {
	t.Helper()
	f, err := os.Open(packaged)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	var r io.Reader = f
	if gz {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Errorf("%s: %v", packaged, err)
			return
		}
		r = zr
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Errorf("%s: %v", packaged, err)
		return
	}
	want, err := os.ReadFile(tree)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s", packaged, tree)
	}
}

// TestLogrotateFile runs the packaged logrotate file through logrotate
// itself, on a log in a temporary directory: it parses, renames the log
// (no copytruncate: the lines already written stay in the rotated file)
// and creates the new one with guardd's mode; its postrotate asks systemd
// to send SIGUSR1 to guardd's main process only.
func TestLogrotateFile(t *testing.T) {
	logrotate, err := exec.LookPath("logrotate")
	if err != nil {
		t.Skip("no logrotate (Debian: logrotate)")
	}
	conf, err := os.ReadFile("../packaging/logrotate/guardd")
	if err != nil {
		t.Fatal(err)
	}
	text := string(conf)
	for _, want := range []string{"create 0640 root root", "--kill-who=main --signal=USR1 kill guardd.service"} {
		if !strings.Contains(text, want) {
			t.Errorf("the logrotate file lacks %q", want)
		}
	}
	if regexp.MustCompile(`(?m)^\s*copytruncate`).MatchString(text) {
		t.Error("the logrotate file uses copytruncate")
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.jsonl")
	// Only the path changes, and postrotate records that it ran instead of
	// signalling (a guardd of this host is none of this test's business).
	marker := filepath.Join(dir, "postrotate-ran")
	text = strings.Replace(text, "/var/log/guardd/audit.jsonl", log, 1)
	post := regexp.MustCompile(`(?m)^\s*systemctl .*$`)
	if !post.MatchString(text) {
		t.Fatal("no systemctl line in postrotate")
	}
	text = post.ReplaceAllString(text, "\t\ttouch "+marker)
	cf := filepath.Join(dir, "guardd.conf")
	if err := os.WriteFile(cf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	line := `{"rule":"cpu-hog","outcome":"done"}` + "\n"
	if err := os.WriteFile(log, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(logrotate, "--force", "--state", filepath.Join(dir, "state"), cf).CombinedOutput()
	if err != nil {
		t.Fatalf("logrotate: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(log + ".1"); err != nil || string(got) != line {
		t.Errorf("rotated log: %q, %v; want the line written before", got, err)
	}
	st, err := os.Stat(log)
	if err != nil {
		t.Fatalf("no new log after rotation: %v", err)
	} else if st.Mode().Perm() != 0o640 || st.Size() != 0 {
		t.Errorf("new log: mode %v size %d, want 0640 and empty", st.Mode().Perm(), st.Size())
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("postrotate did not run: %v", err)
	}
}

// TestMakeVersionMapping: the Makefile's rule from git describe to a
// package version, as the README states it, gives versions dpkg accepts
// and orders as releases are ordered.
func TestMakeVersionMapping(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	cases := []struct{ describe, want string }{
		{"v1.2.3", "1.2.3"},
		{"v1.2.3-4-gabc1234", "1.2.3+git20261204.4.abc1234"},
		{"v1.2.3-4-gabc1234-dirty", "1.2.3+git20261204.4.abc1234.dirty"},
		{"5c57af1", "0.0.0~git20261204.5c57af1"},
		{"5c57af1-dirty", "0.0.0~git20261204.5c57af1.dirty"},
		{"v0-17-gabc1234", "0+git20261204.17.abc1234"},
		{"v1.2.3-rc1", "1.2.3~rc1"},
	}
	for _, c := range cases {
		out, err := exec.Command("make", "-C", "..", "-s", "version", "GIT_DESCRIBE="+c.describe, "GIT_DATE=20261204").CombinedOutput()
		got := strings.TrimSpace(string(out))
		if err != nil || got != c.want {
			t.Errorf("git describe %s: version %q (%v), want %q", c.describe, got, err, c.want)
		}
		if !debVersion.MatchString(got) {
			t.Errorf("git describe %s: %q is not a valid Debian version", c.describe, got)
		}
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		return
	}
	// Each is older than the next, as dpkg sees it: untagged commits, a
	// release candidate, its release, commits after it.
	order := []string{"0.0.0~git20261204.5c57af1", "1.2.3~rc1", "1.2.3", "1.2.3+git20261204.4.abc1234"}
	for i := 1; i < len(order); i++ {
		if err := exec.Command("dpkg", "--compare-versions", order[i-1], "lt", order[i]).Run(); err != nil {
			t.Errorf("dpkg does not order %s before %s", order[i-1], order[i])
		}
	}
}
