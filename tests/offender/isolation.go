//go:build linux

package main

import (
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// Modes for per-customer isolation: a memory hog and a counted fork run.
func init() {
	// alloc MIB: allocate and touch MIB MiB, 1 MiB at a time, saying
	// "allocated N" every 8 MiB; then "allocated-all" and sleep. A memory
	// limit ends it with the OOM killer's SIGKILL part way.
	modes["alloc"] = func(args []string) {
		if len(args) != 1 {
			fail("alloc: want MIB")
		}
		n, err := strconv.Atoi(args[0])
		if err != nil || n <= 0 {
			fail("alloc: bad MIB %q", args[0])
		}
		ready()
		var keep [][]byte
		for i := 1; i <= n; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = byte(i)
			}
			keep = append(keep, b)
			if i%8 == 0 {
				fmt.Printf("allocated %d\n", i)
			}
		}
		fmt.Println("allocated-all", len(keep))
		forever()
	}
	// fork-count N: fork up to N children that block, as fast as it can;
	// say "forked K ERRNO" at the first refusal or "forked N ok".
	modes["fork-count"] = func(args []string) {
		if len(args) != 1 {
			fail("fork-count: want N")
		}
		n, err := strconv.Atoi(args[0])
		if err != nil || n <= 0 {
			fail("fork-count: bad N %q", args[0])
		}
		ready()
		for k := 0; k < n; k++ {
			if _, errno := rawFork(childBlock); errno != 0 {
				fmt.Printf("forked %d %s\n", k, unix.ErrnoName(errno))
				forever()
			}
		}
		fmt.Printf("forked %d ok\n", n)
		forever()
	}
}
