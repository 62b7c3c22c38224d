// Command guardd keeps the customers of a shared hosting server from
// hurting each other: it samples every process, evaluates an HCL policy,
// acts on offenders and writes every decision to an audit log.
//
// This package is the only one that knows all four stages: platform
// (observe), policy (decide), enforce (act) and report (tell).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/policy"
	"github.com/hashicorp/hcl/v2"
)

// version and commit are set at build time with -ldflags
// "-X main.version=... -X main.commit=...". The commit recorded by the Go
// toolchain (a build inside a git checkout) wins over main.commit.
var (
	version = "dev"
	commit  = ""
)

// versionLine is what `guardd version` prints: the version, the VCS
// commit, the Go version and the platform.
func versionLine() string {
	rev, modified := commit, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if modified {
		rev += " (modified)"
	}
	return fmt.Sprintf("guardd %s commit %s %s %s/%s", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

const usage = `guardd keeps shared-hosting customers from hurting each other.

Usage:
  guardd [run] [flags]        run the daemon in the foreground (as root)
  guardd check [PATH]         validate a policy file or directory; exit 1 on any error
  guardd default-policy       print the embedded default policy
  guardd explain [flags] PID  show a process's classes, protection and every rule's verdict
  guardd top [flags]          show load, users ranked by CPU/processes/inodes, long runners, actions, traffic
  guardd demo [flags]         run guardd-demo: guardd at work on throwaway offenders (as root)
  guardd version              print the version

Run "guardd COMMAND -h" for the flags of a command.
`

// exitError carries an exit code out of run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func main() {
	// Helpers re-executed from guardd's own binary are dispatched before
	// anything else starts (no signal handlers: SIGTERM must kill them).
	if len(os.Args) > 1 && (os.Args[1] == enforce.HelperSignalUser || os.Args[1] == enforce.HelperProcCap) {
		os.Exit(enforce.RunHelper(os.Args[1:]))
	}
	if len(os.Args) > 1 && os.Args[1] == probeSyscallCmd {
		os.Exit(runSyscallProbe(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ee *exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "guardd:", ee.err)
		}
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "guardd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runDaemon(ctx, args, stderr)
	case "check":
		return runCheck(args, stdout, stderr)
	case "default-policy":
		_, err := stdout.Write(policy.DefaultSource)
		return err
	case "explain":
		return runExplain(ctx, args, stdout, stderr)
	case "top":
		return runTop(ctx, args, stdout, stderr)
	case "demo":
		return runDemo(args, stderr)
	case "version":
		fmt.Fprintln(stdout, versionLine())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return &exitError{code: 2, err: fmt.Errorf("unknown command %q", cmd)}
}

// defaultPolicyPath is where packages install the policy.
func defaultPolicyPath() string {
	if runtime.GOOS == "freebsd" {
		return "/usr/local/etc/guardd/policy.hcl"
	}
	return "/etc/guardd/policy.hcl"
}

// policySource says where the policy comes from: a path, or the embedded
// default when the path is empty.
type policySource struct {
	path     string
	explicit bool // given with --policy: a missing file is an error, not a fallback
}

func (s policySource) String() string {
	if s.path == "" {
		return policy.DefaultName
	}
	return s.path
}

// resolve picks the file to load: the explicit path, else the default path
// if it exists, else the embedded default.
func (s policySource) resolve() policySource {
	if s.explicit {
		return s
	}
	if _, err := os.Stat(defaultPolicyPath()); err == nil {
		return policySource{path: defaultPolicyPath()}
	}
	return policySource{}
}

func (s policySource) load() (*policy.Policy, hcl.Diagnostics) {
	if s.path == "" {
		return policy.Default()
	}
	return policy.Load(s.path)
}

// flagSet returns a FlagSet that prints its usage on -h and reports errors
// as exit code 2.
func flagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: guardd %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &exitError{code: 0}
		}
		return &exitError{code: 2}
	}
	return nil
}

func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return buildLogger(format, lv, w)
}
