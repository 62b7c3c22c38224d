package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/report"
	"golang.org/x/sys/unix"
)

// The demo's fork storm and zombies: a zombie factory (a parent that never
// reaps its children) as the demo user, and a bash fork bomb as a user of
// its own, since kill_user takes every process of its user.

// demoBombNet is the bomb's own RLIMIT_NPROC, above the 400 of the
// demo's limits block: the cap guardd sets is what holds it.
const demoBombNet = 600

// demoZombies is how many zombies the factory leaves (the demo's rule acts
// above 20).
const demoZombies = 25

func stormOffenders(dir string, stormAcc platform.Account) []*demoOffender {
	trigger := filepath.Join(dir, "storm-go")
	bomb := &demoOffender{label: "fork bomb (own user)", expect: "limits caps it, fork-storm: kill_user",
		file: "bash-bomb", argv0: "bash-bomb", mode: "bomb", args: []string{trigger}, account: &stormAcc, deferred: true}
	bomb.about = func(ev report.Event) bool { return ev.User == stormUser }
	bomb.done = func(evs []report.Event) bool {
		for _, ev := range evs {
			if ev.User == stormUser && ev.Action == "kill_user" {
				return true
			}
		}
		return false
	}
	factory := &demoOffender{label: "zombie factory", expect: "zombies: SIGCHLD, then ended",
		file: "zombie-factory", argv0: "zombie-factory", mode: "zombies"}
	return []*demoOffender{factory, bomb}
}

// triggerStorm starts the bomb's shell once the CPU burners are gone
// (hundreds of runnable bash processes would starve them below cpu-hog's
// threshold), waits for guardd to cap it, and sets the bomb off, so that
// the kernel holds it at the cap while kill_user comes.
func triggerStorm(ctx context.Context, offenders []*demoOffender, say func(string, ...any)) {
	var bomb *demoOffender
	for _, o := range offenders {
		switch o.mode {
		case "bomb":
			bomb = o
		case "burn":
			select {
			case <-o.exited:
			case <-ctx.Done():
				return
			}
		}
	}
	if bomb == nil {
		return
	}
	if err := bomb.start(*bomb.account); err != nil {
		say("fork bomb: %v", err)
		return
	}
	say("  %-28s pid %-7d %s (started now that the burners are gone)", bomb.label, bomb.id.PID, bomb.file)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(int(bomb.id.PID)) + "/limits")
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(strings.TrimPrefix(line, "Max processes")); strings.HasPrefix(line, "Max processes") && len(f) > 0 && f[0] != strconv.Itoa(demoBombNet) {
				os.WriteFile(bomb.args[0], nil, 0o644)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// reapOrphans makes the demo a child subreaper (PR_SET_CHILD_SUBREAPER) and
// reaps the orphans that come to it, leaving its own children (offenders,
// guardd) to their exec.Cmd. It returns a function that stops it.
func reapOrphans() func() {
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	self := int32(os.Getpid())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			ents, _ := os.ReadDir("/proc")
			for _, e := range ents {
				b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
				var st platform.Stat
				if err != nil || platform.ParseStat(b, &st) != nil || st.PPID != self || st.State != 'Z' {
					continue
				}
				// Only orphans: the demo's own children were started with a
				// pipe or by exec.Cmd and are waited for there. An orphan's
				// exe is unreadable once it is a zombie, so tell them by
				// name: only the fork bomb's (its shells and their
				// sleeps) and the factory's children are orphaned.
				if c := string(st.Comm); c == "bash" || c == "bash-bomb" || c == "true" || c == "sleep" {
					var ws unix.WaitStatus
					unix.Wait4(int(st.PID), &ws, unix.WNOHANG, nil)
				}
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

func init() {
	// bomb TRIGGER: wait for TRIGGER, then the classic bash fork bomb.
	demoModes["bomb"] = func(args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("usage: _offender bomb TRIGGER")
		}
		fmt.Printf("ready %d\n", os.Getpid())
		script := fmt.Sprintf("while [ ! -e %s ]; do sleep 0.1; done; b(){ b|b& }; b; sleep 600", args[0])
		return unix.Exec("/bin/bash", []string{"bash", "-c", script}, []string{"PATH=/usr/bin:/bin"})
	}
	// zombies: start children that exit at once and never wait for them.
	demoModes["zombies"] = func([]string) error {
		for range demoZombies {
			cmd := exec.Command("/bin/true")
			if err := cmd.Start(); err != nil {
				return err
			}
			// never cmd.Wait: that is the bug on show
		}
		fmt.Printf("ready %d\n", os.Getpid())
		select {}
	}
}
