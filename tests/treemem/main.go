//go:build linux

// Command treemem runs one inode count of a tree (platform.InodeCounter,
// as guardd's inodes block does) or one cleanup of a user's files in it
// (enforce.CleanTmp, as a clean_tmp step does), and prints what it did
// with its peak RSS. The hostile-trees benchmark runs it as a fresh
// process, so that the peak is the operation's (plus the Go runtime's,
// printed as base_kib).
//
//	treemem count TREE
//	treemem clean UID OLDER_THAN TREE
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
)

// maxRSS is this process's peak RSS in KiB: VmHWM, its own address
// space's, since exec (getrusage's ru_maxrss carries over the peak of the
// address space exec replaced: here the test binary's, which vfork shared).
func maxRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fail(err.Error())
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				fail("VmHWM: " + err.Error())
			}
			return n
		}
	}
	fail("no VmHWM in /proc/self/status")
	return 0
}

func main() {
	base := maxRSS()
	t0 := time.Now()
	switch {
	case len(os.Args) == 3 && os.Args[1] == "count":
		trees, errs := platform.OpenTrees([]string{os.Args[2]})
		if len(errs) > 0 {
			fail(fmt.Sprint(errs))
		}
		// As guardd counts: two workers, every directory's path kept
		// for the watches up to its limit.
		res := (&platform.InodeCounter{MaxDirs: 16385}).Count(trees)
		var n int64
		for _, c := range res.ByUID {
			n += c
		}
		fmt.Printf("entries=%d inodes=%d short=%d errors=%d", res.Entries, n, len(res.Short), res.Errors)
	case len(os.Args) == 5 && os.Args[1] == "clean":
		uid, err := strconv.ParseUint(os.Args[2], 10, 32)
		if err != nil {
			fail(err.Error())
		}
		older, err := time.ParseDuration(os.Args[3])
		if err != nil {
			fail(err.Error())
		}
		r := enforce.New(1000, nil, nil).CleanTmp(enforce.Clean{UID: uint32(uid), Dirs: []string{os.Args[4]}, OlderThan: older})
		fmt.Printf("outcome=%s files=%d dirs=%d errors=%d", r.Outcome, r.Files, r.Dirs, r.Errors)
	default:
		fail("usage: treemem count TREE | treemem clean UID OLDER_THAN TREE")
	}
	fmt.Printf(" ms=%d maxrss_kib=%d base_kib=%d\n", time.Since(t0).Milliseconds(), maxRSS(), base)
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "treemem:", msg)
	os.Exit(1)
}
