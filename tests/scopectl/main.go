//go:build linux

// Command scopectl drives enforce's systemd group driver for the
// end-to-end test (tests/systemd_scopes_test.go): it runs as root inside
// the test's container, one command per line on stdin, one answer per
// line on stdout ("ok ..." or "err ..."):
//
//	ensure UID CPU% MEMHIGH MEMMAX TASKS RBPS WBPS [DEVICE...]
//	place UID PID STARTTIME work|kept  → ok took=MICROSECONDS
//	start PID                  → ok STARTTIME UID
//	freeze UID | thaw UID | kill UID | remove UID
//	members UID                → ok work=PID,... kept=PID,...
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
)

func main() {
	minUID := flag.Uint("min-uid", 1000, "lowest uid the driver acts on")
	strict := flag.Bool("strict", false, "exit 1 at the first command that fails (run as a unit, stdin from a file)")
	flag.Parse()
	d, err := enforce.NewSystemdGroups(context.Background(), uint32(*minUID))
	if err != nil {
		fmt.Println("err", err)
		os.Exit(1)
	}
	defer d.Close()
	fmt.Println("ok", d.Name())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		out, err := run(d, strings.Fields(sc.Text()))
		if err != nil {
			fmt.Println("err", strings.ReplaceAll(err.Error(), "\n", " "))
			if *strict {
				d.Close()
				os.Exit(1)
			}
		} else {
			fmt.Println(strings.TrimSpace("ok " + out))
		}
	}
}

func num(s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("bad number %q", s))
	}
	return n
}

func run(d *enforce.SystemdGroups, f []string) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	if len(f) < 2 {
		return "", fmt.Errorf("short command %q", f)
	}
	uid := uint32(num(f[1]))
	switch f[0] {
	case "ensure":
		if len(f) < 8 {
			return "", fmt.Errorf("ensure: want UID CPU MEMHIGH MEMMAX TASKS RBPS WBPS [DEVICE...]")
		}
		cpu, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			return "", err
		}
		return "", d.EnsureScope(uid, enforce.ScopeLimits{CPUPercent: cpu, MemoryHigh: num(f[3]), MemoryMax: num(f[4]),
			TasksMax: int(num(f[5])), IOReadBPS: num(f[6]), IOWriteBPS: num(f[7]), Devices: f[8:]})
	case "place":
		if len(f) != 5 {
			return "", fmt.Errorf("place: want UID PID STARTTIME work|kept")
		}
		start := time.Now()
		err := d.PlaceScope(uid, platform.ProcID{PID: int32(num(f[2])), StartTime: num(f[3])}, f[4] == "kept")
		return fmt.Sprintf("took=%dus", time.Since(start).Microseconds()), err
	case "start":
		p, err := platform.ReadProcess(int32(num(f[1])), nil)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d %d", p.StartTime, p.UID), nil
	case "freeze":
		return "", d.Freeze(uid)
	case "thaw":
		return "", d.Thaw(uid)
	case "kill":
		return "", d.KillWork(uid)
	case "remove":
		return "", d.Remove(uid)
	case "members":
		w, k, err := d.Members(uid)
		return fmt.Sprintf("work=%s kept=%s", join(w), join(k)), err
	}
	return "", fmt.Errorf("unknown command %q", f[0])
}

func join(pids []int32) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}
