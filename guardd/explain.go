package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/guardd/guardd/internal/printable"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
)

func runExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("explain [flags] PID", "explain [flags] PID\n\nShows how the policy sees one process: its class, its protection, every\nrule's verdict and the values behind it, and its escalations (from the\nrunning daemon's state file).", stderr)
	var src policySource
	fs.StringVar(&src.path, "policy", "", "policy file or directory (default as for run)")
	window := fs.Duration("window", time.Second, "sample this long to measure CPU use")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return &exitError{code: 2}
	}
	pid, err := strconv.ParseInt(fs.Arg(0), 10, 32)
	if err != nil || pid <= 0 {
		return &exitError{code: 2, err: fmt.Errorf("PID must be a positive number, not %q", fs.Arg(0))}
	}
	src.explicit = src.path != ""
	src = src.resolve()
	pol, diags := src.load()
	if diags.HasErrors() {
		policy.PrintDiagnostics(stderr, diags, isTerminal(stderr))
		return &exitError{code: 1, err: fmt.Errorf("policy %s is not valid", src)}
	}
	acc := platform.NewAccounts()
	platform.SetExeInspector(pol.Protect.MatchExe) // as the daemon: protection by exe needs provenance
	s, err := platform.NewSampler(acc)
	if err != nil {
		return err
	}
	defer s.Close()
	locks := platform.NewLockObserver() // lock waits are timed over the window, as the daemon sees them from first sight
	first, err := s.Sample()
	if err != nil {
		return err
	}
	locks.Observe(first)
	select {
	case <-time.After(*window):
	case <-ctx.Done():
		return ctx.Err()
	}
	snap, err := s.Sample()
	if err != nil {
		return err
	}
	locks.Observe(snap)
	var p *platform.Process
	for _, q := range snap.Procs {
		if q.PID == int32(pid) {
			p = q
			break
		}
	}
	if p == nil {
		return &exitError{code: 1, err: fmt.Errorf("no process %d", pid)}
	}
	u := snap.Users[p.UID]
	// The process's names are the customer's to choose: escaped
	// (terminal escape sequences, newlines), like everything printed here
	// that came from the host.
	esc := printable.Escape
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "process\t%d (started %s, %s ago)\n", p.PID, p.Started.Format(time.RFC3339), p.Age.Round(time.Second))
	fmt.Fprintf(w, "user\t%s (uid %d, groups %s)\n", esc(p.User), p.UID, esc(strings.Join(u.Groups, ",")))
	fmt.Fprintf(w, "exe\t%s%s\n", esc(p.Exe), map[bool]string{true: " (deleted)"}[p.ExeDeleted])
	fmt.Fprintf(w, "comm / cmdline\t\"%s\" / \"%s\"\n", esc(p.Comm), esc(p.Cmdline))
	fmt.Fprintf(w, "state, nice\t%s, %d\n", string(p.State), p.Nice)
	fmt.Fprintf(w, "cpu\t%.1f %% over %s\n", p.CPUPercent, snap.Interval.Round(time.Millisecond))
	if p.LocksHeld > 0 || p.LockWait > 0 {
		fmt.Fprintf(w, "file locks\t%d held, blocking %d (for %s), waiting %s (timed since explain began)\n",
			p.LocksHeld, p.LockBlocking, p.LockBlockingFor.Round(time.Millisecond), p.LockWait.Round(time.Millisecond))
		if p.LockBlockingOthers > 0 || p.LockForeign > 0 {
			fmt.Fprintf(w, "\tof them %d of other uids (for %s); %d of its locks on files of other uids (waited on for %s)\n",
				p.LockBlockingOthers, p.LockBlockingOthersFor.Round(time.Millisecond), p.LockForeign, p.LockForeignFor.Round(time.Millisecond))
		}
	}
	var classes []string
	for _, c := range pol.ClassesOf(p.UID, p.User, u.Groups) {
		classes = append(classes, c.Name)
	}
	fmt.Fprintf(w, "classes\t%s\n", orNone(strings.Join(classes, ", ")))
	prot := pol.ProtectedProcess(p, u.Groups)
	if p.PID == int32(os.Getpid()) {
		prot = "guardd itself"
	}
	fmt.Fprintf(w, "protected\t%s\n", esc(orNone(prot)))
	if why := pol.ExeUnprotected(p); why != "" && prot == "" {
		fmt.Fprintf(w, "not protected\t%s\n", esc(why))
	}
	fmt.Fprintf(w, "policy\t%s (mode %s)\n", src, pol.Mode)
	w.Flush()

	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tAT\tAPPLIES\tHOLDS\tSCOPE\tMODE\tVALUES")
	for _, v := range pol.Explain(p, u, &snap.Host) {
		applies := yesNo(v.Applies && prot == "")
		if v.Applies && prot != "" {
			applies = "no (protected)"
		} else if !v.Applies {
			applies = "no (class " + v.Rule.Class.Name + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Rule.Name, v.Rule.At(), applies, yesNo(v.Holds),
			v.Rule.Scope, v.Rule.Mode, formatValues(v.Values))
	}
	tw.Flush()
	explainLedger(stdout, filepath.Join(pol.StateDir, "ledger.json"), p)
	return nil
}

// explainLedger prints the running daemon's escalations for p, read from
// its state file.
func explainLedger(w io.Writer, path string, p *platform.Process) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var f struct {
		Entries []struct {
			Rule      string    `json:"rule"`
			PID       int32     `json:"pid"`
			StartTime uint64    `json:"starttime"`
			UID       uint32    `json:"uid"`
			Since     time.Time `json:"since"`
			Done      int       `json:"done"`
			LastStep  time.Time `json:"last_step"`
		} `json:"entries"`
	}
	if json.Unmarshal(b, &f) != nil {
		return
	}
	var lines []string
	for _, e := range f.Entries {
		if (e.PID == p.PID && e.StartTime == p.StartTime) || (e.PID == 0 && e.UID == p.UID) {
			line := fmt.Sprintf("  %s: condition held since %s, %d step(s) done", e.Rule, e.Since.Format(time.RFC3339), e.Done)
			if !e.LastStep.IsZero() {
				line += ", last at " + e.LastStep.Format(time.RFC3339)
			}
			lines = append(lines, line)
		}
	}
	if len(lines) > 0 {
		sort.Strings(lines)
		fmt.Fprintf(w, "\nescalations (%s):\n%s\n", path, strings.Join(lines, "\n"))
	}
}

func formatValues(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		if s, ok := m[k].(string); ok {
			parts = append(parts, k+`="`+printable.Escape(s)+`"`)
		} else {
			parts = append(parts, printable.Escape(fmt.Sprintf("%s=%v", k, m[k])))
		}
	}
	return strings.Join(parts, " ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
