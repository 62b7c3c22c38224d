package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
)

func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := flagSet("check", "check [PATH]\n\nValidates a policy file or directory (default: "+defaultPolicyPath()+",\nor the embedded default when it does not exist) and prints every error\nwith its file:line,col, a snippet and a hint, then warnings: users and\ngroups the policy names that do not exist, a watchdog that cannot be met,\nand (run as root) what this host will not let guardd do.\nExit 0 when valid, 1 when not.", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return &exitError{code: 2}
	}
	src := policySource{}
	if fs.NArg() == 1 {
		src = policySource{path: fs.Arg(0), explicit: true}
	}
	src = src.resolve()
	// Every error in one pass: the file modes, the policy's own errors,
	// then what it names outside itself.
	nerr := 0
	if src.path != "" {
		for _, e := range policyPermissionErrors(src.path) {
			fmt.Fprintf(stderr, "%s: Error: %s\n", src, e)
			nerr++
		}
	}
	p, diags := src.load()
	if len(diags) > 0 {
		policy.PrintDiagnostics(stderr, diags, isTerminal(stderr))
	}
	nerr += len(diags.Errs())
	var warnings []string
	if p != nil {
		for _, err := range checkPolicy(p) {
			for _, leaf := range leafErrors(err) {
				fmt.Fprintln(stderr, locatedError(src, leaf))
				nerr++
			}
		}
		warnings = append(warnings, accountWarnings(p, loadedAccounts(), "/etc/group")...)
		warnings = append(warnings, watchdogWarnings(os.Getenv("WATCHDOG_USEC"), systemdUnitPaths)...)
		if os.Geteuid() == 0 {
			for _, pr := range selfCheck(p) {
				warnings = append(warnings, pr.String())
			}
		}
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if nerr > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%s: %d error(s); the policy was not accepted", src, nerr)}
	}
	fmt.Fprintf(stdout, "%s: OK: %d class(es), %d rule(s), mode %s, interval %s",
		src, len(p.Classes), len(p.Rules), p.Mode, p.Interval)
	if len(warnings) > 0 {
		fmt.Fprintf(stdout, ", %d warning(s)", len(warnings))
	}
	fmt.Fprintln(stdout)
	return nil
}

// leafErrors flattens joined errors (errors.Join, also under a %w
// prefix) into one error per line of output.
func leafErrors(err error) []error {
	if m, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range m.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	if u := errors.Unwrap(err); u != nil {
		if _, ok := u.(interface{ Unwrap() []error }); ok {
			return leafErrors(u) // the prefix names the component; each leaf says where
		}
	}
	return []error{err}
}

// fileLine matches an error that starts with FILE:LINE[:COL]: .
var fileLine = regexp.MustCompile(`^[^\s:]+:\d+(:\d+)?: `)

// locatedError leads an error found outside the policy with the file and
// line it is about when it has them (a template, the address map), else
// with the policy.
func locatedError(src policySource, err error) string {
	if msg := err.Error(); fileLine.MatchString(msg) {
		return msg
	}
	return fmt.Sprintf("%s: %v", src, err)
}

// policyPermissionErrors says who other than root can change the policy,
// as sudo does for sudoers: the policy decides whose processes guardd
// kills, so whoever can write it, or replace it, owns the host. It looks
// at path, the policy files of a directory, and every directory above
// (a world-writable one with the sticky bit, such as /tmp, lets nobody
// replace another's entry). The user running check is trusted as root
// is, for drafts checked without root.
func policyPermissionErrors(path string) []string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return []string{err.Error()}
	}
	targets := []string{abs}
	if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
		targets = append(targets, real)
	}
	var out []string
	seen := map[string]bool{}
	check := func(p string, ancestor bool) {
		if seen[p] {
			return
		}
		seen[p] = true
		if why := writableByOthers(p, ancestor); why != "" {
			out = append(out, why)
		}
	}
	for _, t := range targets {
		check(t, false)
		if fi, err := os.Stat(t); err == nil && fi.IsDir() {
			ents, _ := os.ReadDir(t)
			for _, e := range ents {
				if policy.IsPolicyFile(e.Name()) {
					check(filepath.Join(t, e.Name()), false)
				}
			}
		}
		for dir := filepath.Dir(t); ; dir = filepath.Dir(dir) {
			check(dir, true)
			if dir == "/" || dir == "." {
				break
			}
		}
	}
	return out
}

// writableByOthers says why p can be changed by someone other than root
// (and the user running check), or "" when it cannot.
func writableByOthers(p string, ancestor bool) string {
	fi, err := os.Stat(p)
	if err != nil {
		return "" // a missing file is reported by the load
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	mode := fi.Mode().Perm()
	trusted := func(uid uint32) bool { return uid == 0 || uid == uint32(os.Geteuid()) }
	fix := fmt.Sprintf("(chown root:root %s; chmod go-w %s)", p, p)
	switch {
	case mode&0o002 != 0 && !(ancestor && fi.Mode()&os.ModeSticky != 0):
		return fmt.Sprintf("%s is world-writable: anyone can change whose processes guardd kills %s", p, fix)
	case mode&0o020 != 0 && st.Gid != 0:
		return fmt.Sprintf("%s is writable by group %s: its members can change whose processes guardd kills %s", p, groupName(st.Gid), fix)
	case mode&0o200 != 0 && !trusted(st.Uid):
		return fmt.Sprintf("%s is owned by %s, who can change whose processes guardd kills %s", p, userName(st.Uid), fix)
	}
	return ""
}

// loadedAccounts returns the host's accounts, read now.
func loadedAccounts() *platform.Accounts {
	acc := platform.NewAccounts()
	acc.Refresh() // on error, every name is unknown: the warnings say so
	return acc
}

func userName(uid uint32) string {
	if a, ok := loadedAccounts().LookupUID(uid); ok {
		return fmt.Sprintf("user %s (uid %d)", a.Name, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

func groupName(gid uint32) string {
	if b, err := os.ReadFile("/etc/group"); err == nil {
		for _, g := range platform.ParseGroup(b) {
			if g.GID == gid {
				return fmt.Sprintf("%s (gid %d)", g.Name, gid)
			}
		}
	}
	return fmt.Sprintf("gid %d", gid)
}

// accountWarnings names the users and groups of classes and protect
// blocks that do not exist on this host: a typo protects or selects
// nobody, but an account created later is a normal thing, so these are
// warnings, not errors.
func accountWarnings(p *policy.Policy, acc *platform.Accounts, groupFile string) []string {
	groups := map[string]bool{}
	if b, err := os.ReadFile(groupFile); err == nil {
		for _, g := range platform.ParseGroup(b) {
			groups[g.Name] = true
		}
	}
	var out []string
	note := func(where, selects string, names []policy.AccountName) {
		for _, n := range names {
			exists := false
			switch n.Kind {
			case "user":
				_, exists = acc.Lookup(n.Name)
			case "group":
				exists = groups[n.Name]
			}
			if !exists {
				out = append(out, fmt.Sprintf("%s:%d,%d: %s names %s %q, which does not exist on this host (yet): it %s nobody",
					n.Range.Filename, n.Range.Start.Line, n.Range.Start.Column, where, n.Kind, n.Name, selects))
			}
		}
	}
	for _, c := range p.Classes {
		note(fmt.Sprintf("class %q", c.Name), "selects", c.Names)
	}
	note("protect", "protects", p.Protect.Names)
	return out
}

// systemdUnitPaths are where guardd's unit and its drop-ins may be, in
// systemd's order of precedence (later drop-ins win).
var systemdUnitPaths = []string{
	"/etc/systemd/system/guardd.service",
	"/run/systemd/system/guardd.service",
	"/usr/local/lib/systemd/system/guardd.service",
	"/usr/lib/systemd/system/guardd.service",
	"/lib/systemd/system/guardd.service",
}

// minWatchdog is the shortest WatchdogSec guardd can promise to meet: a
// tick with 30,000 processes on a loaded host, or a slow first count of
// the inode trees, must fit in it.
const minWatchdog = 5 * time.Second

// watchdogWarnings warns when systemd's watchdog (WATCHDOG_USEC from the
// environment, else WatchdogSec= of the installed unit and its drop-ins)
// is too short for guardd to meet. The loop feeds it every quarter of
// WatchdogSec between ticks, so the policy's interval does not matter;
// only a tick longer than the watchdog does.
func watchdogWarnings(envUsec string, units []string) []string {
	var wd time.Duration
	var from string
	if envUsec != "" {
		us, err := strconv.ParseInt(envUsec, 10, 64)
		if err != nil {
			return []string{fmt.Sprintf("WATCHDOG_USEC=%q is not a number of microseconds", envUsec)}
		}
		wd, from = time.Duration(us)*time.Microsecond, "WATCHDOG_USEC"
	} else {
		for _, u := range units {
			files := []string{}
			if _, err := os.Stat(u); err == nil {
				files = append(files, u)
			}
			dropins, _ := filepath.Glob(u + ".d/*.conf")
			sort.Strings(dropins)
			files = append(files, dropins...)
			for _, f := range files {
				if v, ok := unitSetting(f, "WatchdogSec"); ok {
					d, err := parseSystemdTime(v)
					if err != nil {
						return []string{fmt.Sprintf("%s: WatchdogSec=%s: %v", f, v, err)}
					}
					wd, from = d, f+": WatchdogSec="+v
				}
			}
			if len(files) > 0 {
				break // the first unit found is the one systemd uses
			}
		}
	}
	if from == "" || wd == 0 {
		return nil
	}
	if wd < minWatchdog {
		return []string{fmt.Sprintf("%s: a watchdog of %s is shorter than one tick can take on a loaded host (guardd feeds it every %s between ticks): set WatchdogSec to at least %s",
			from, wd, watchdogPeriod(wd), minWatchdog)}
	}
	return nil
}

// unitSetting returns the last value of key in a unit file's [Service]
// section.
func unitSetting(path, key string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	var val string
	found, service := false, false
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			service = line == "[Service]"
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && service && strings.TrimSpace(k) == key {
			val, found = strings.TrimSpace(v), true
		}
	}
	return val, found
}

// parseSystemdTime parses a systemd time span (systemd.time(7)): "30",
// "30s", "1min 30s", "500ms", "infinity" (no watchdog: 0).
func parseSystemdTime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "infinity" || s == "0" {
		return 0, nil
	}
	units := []struct {
		suffix string
		d      time.Duration
	}{{"usec", time.Microsecond}, {"us", time.Microsecond}, {"msec", time.Millisecond}, {"ms", time.Millisecond},
		{"seconds", time.Second}, {"second", time.Second}, {"sec", time.Second}, {"s", time.Second},
		{"minutes", time.Minute}, {"minute", time.Minute}, {"min", time.Minute}, {"m", time.Minute},
		{"hours", time.Hour}, {"hour", time.Hour}, {"hr", time.Hour}, {"h", time.Hour}}
	var total time.Duration
	rest := strings.ReplaceAll(s, " ", "")
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("not a time span")
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("not a time span")
		}
		rest = rest[i:]
		unit := time.Second // a bare number is seconds
		for _, u := range units {
			if strings.HasPrefix(rest, u.suffix) {
				unit, rest = u.d, rest[len(u.suffix):]
				break
			}
		}
		total += time.Duration(n * float64(unit))
	}
	return total, nil
}
