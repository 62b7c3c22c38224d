// Command guardd-demo shows guardd at work: it creates throwaway users,
// starts misbehaving processes as them, runs the real guardd binary on the
// default policy with shortened times and prints what happened to each.
//
// It is a program of its own so that the offenders (a fork bomb among
// them) never ship inside the root daemon's binary. The offenders are
// copies of this binary, run through its hidden `_offender` command.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// demoPolicy is the default policy with shortened times (see demo.hcl).
//
//go:embed demo.hcl
var demoPolicy string

// modulePath is guardd's Go module: in a checkout of it, the demo builds
// the daemon from the same source.
const modulePath = "github.com/guardd/guardd"

const synopsis = `guardd-demo [--guardd PATH] [--timeout DURATION]

Creates throwaway users (gdt-demo-*), starts offenders as them (a CPU
burner, a long runner, a burner that calls itself sshd, a tool run from
/tmp, a CGI asleep on a lock and one waiting on it, a temp file spewer, a
server on port 8080, a zombie factory, a fork bomb), runs guardd on the
default policy with shortened times, shows what happens to each offender
and why, and removes everything it made, also on Ctrl-C. Needs root.

guardd is the --guardd binary, else the guardd next to this program, else
one built from the source tree the demo is run in (go run ./cmd/guardd-demo
in a checkout), else the guardd on PATH.`

func main() {
	// The offenders are copies of this binary: dispatched before anything
	// else starts (no signal handlers: the demo's SIGKILL must end them).
	if len(os.Args) > 1 && os.Args[1] == "_offender" {
		if err := runOffender(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "guardd-demo _offender:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "guardd-demo:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// defaultTimeout is how long the demo waits for every offender's fate.
const defaultTimeout = 90 * time.Second

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("guardd-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	guarddPath := fs.String("guardd", "", "the guardd binary to run (default: next to this program, built from the source tree, or on PATH)")
	timeout := fs.Duration("timeout", defaultTimeout, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	if os.Geteuid() != 0 {
		return errors.New("the demo needs root: it creates throwaway users and runs guardd")
	}
	say := func(format string, a ...any) { fmt.Fprintf(stdout, "demo: "+format+"\n", a...) }
	bin, cleanup, err := findGuardd(*guarddPath, say)
	if err != nil {
		return err
	}
	defer cleanup()
	return runDemo(ctx, bin, *timeout, stdout, stderr)
}

// findGuardd returns the daemon binary to run and a function that removes
// what it built.
func findGuardd(flagPath string, say func(string, ...any)) (string, func(), error) {
	nothing := func() {}
	if flagPath != "" {
		if err := isExecutable(flagPath); err != nil {
			return "", nothing, fmt.Errorf("--guardd: %w", err)
		}
		abs, err := filepath.Abs(flagPath)
		return abs, nothing, err
	}
	if self, err := os.Executable(); err == nil {
		next := filepath.Join(filepath.Dir(self), "guardd")
		if isExecutable(next) == nil {
			say("running %s (next to the demo)", next)
			return next, nothing, nil
		}
	}
	// `go run ./cmd/guardd-demo` in a checkout: a guardd on PATH may be an
	// older release, so build the one of this source.
	if out, err := exec.Command("go", "list", "-m").Output(); err == nil && strings.TrimSpace(string(out)) == modulePath {
		dir, err := os.MkdirTemp("", "guardd-demo-bin-")
		if err != nil {
			return "", nothing, err
		}
		bin := filepath.Join(dir, "guardd")
		say("building guardd from the source tree (go build -o %s %s/guardd)", bin, modulePath)
		build := exec.Command("go", "build", "-o", bin, modulePath+"/guardd")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			os.RemoveAll(dir)
			return "", nothing, fmt.Errorf("go build guardd: %w", err)
		}
		return bin, func() { os.RemoveAll(dir) }, nil
	}
	if p, err := exec.LookPath("guardd"); err == nil {
		abs, err := filepath.Abs(p)
		if err == nil {
			say("running %s (from PATH)", abs)
		}
		return abs, nothing, err
	}
	return "", nothing, errors.New("no guardd found: give one with --guardd PATH, put guardd next to guardd-demo or on PATH, or run the demo in guardd's source tree (go run ./cmd/guardd-demo)")
}

func isExecutable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}
