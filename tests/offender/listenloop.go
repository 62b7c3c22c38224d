//go:build linux

package main

//	offender listenloop N PORT     N times: a fresh TCP socket bound to 127.0.0.1:PORT
//	                               (SO_REUSEADDR), listen(), close; print "ns-per-listen X"
//	                               (listen alone is timed) and "errors E"

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

func init() { modes["listenloop"] = listenLoopMode }

func listenLoopMode(args []string) {
	if len(args) != 2 {
		fail("usage: listenloop N PORT")
	}
	n := atoi(args[0])
	sa := &unix.SockaddrInet4{Port: atoi(args[1]), Addr: [4]byte{127, 0, 0, 1}}
	var spent time.Duration
	errs := 0
	for range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			fail("socket: %v", err)
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err := unix.Bind(fd, sa); err != nil {
			errs++
			unix.Close(fd)
			continue
		}
		start := time.Now()
		err = unix.Listen(fd, 16)
		spent += time.Since(start)
		if err != nil {
			errs++
		}
		unix.Close(fd)
	}
	fmt.Printf("ns-per-listen %d\n", spent.Nanoseconds()/int64(max(n, 1)))
	fmt.Printf("errors %d\n", errs)
	ready()
	forever()
}
