//go:build linux

package main

// Offenders that run their own servers: a customer's Apache on 8080, an
// SMTP daemon, an IRC bot.
//
//	offender listen PROTO ADDR PORT [share] [onsignal]
//	                                          bind (and listen, for tcp); print "listening-at NS"
//	                                          (CLOCK_MONOTONIC) and "listening", or "bind-error
//	                                          ERRNO"; with share, start a child that inherits
//	                                          the socket and print "child PID"; with onsignal,
//	                                          say ready first and bind on SIGUSR1 (so that the
//	                                          harness has read the process before guardd can
//	                                          kill it)
//	offender connect ADDR PORT                connect to a TCP server; print "connected" or
//	                                          "connect-error ERRNO"
//	offender bindloop N ADDR PORT             bind() a fresh socket N times (closing each); print
//	                                          "ns-per-bind X" and "errors E"
//
// PROTO is tcp, udp or udplite; ADDR an IPv4 or IPv6 address (:: and ::ffff:a.b.c.d
// included). They print their result lines before "ready PID NICE", but for
// listen onsignal.

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	modes["listen"] = listenMode
	modes["connect"] = connectMode
	modes["bindloop"] = bindLoopMode
}

func sockaddr(addr string, port int) (int, unix.Sockaddr) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		fail("bad address %q: %v", addr, err)
	}
	if port < 0 || port > 65535 {
		fail("bad port %d", port)
	}
	if a.Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: a.As4()}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: port, Addr: a.As16()}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail("not a number: %q", s)
	}
	return n
}

func errnoName(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return err.Error()
}

func listenMode(args []string) {
	if len(args) < 3 {
		fail("usage: listen tcp|udp ADDR PORT [share] [onsignal]")
	}
	opts := map[string]bool{}
	for _, a := range args[3:] {
		opts[a] = true
	}
	if opts["onsignal"] {
		start := make(chan os.Signal, 1)
		signal.Notify(start, syscall.SIGUSR1)
		ready()
		<-start
	}
	typ, proto := unix.SOCK_STREAM, 0
	switch args[0] {
	case "tcp":
	case "udp":
		typ = unix.SOCK_DGRAM
	case "udplite":
		typ, proto = unix.SOCK_DGRAM, unix.IPPROTO_UDPLITE
	default:
		fail("listen: protocol %q", args[0])
	}
	family, sa := sockaddr(args[1], atoi(args[2]))
	fd, err := unix.Socket(family, typ, proto) // no CLOEXEC: a shared socket goes to the child
	if err != nil {
		fail("socket: %v", err)
	}
	err = unix.Bind(fd, sa)
	if err == nil && typ == unix.SOCK_STREAM {
		err = unix.Listen(fd, 16)
	}
	if err != nil {
		fmt.Println("bind-error", errnoName(err))
		if !opts["onsignal"] {
			ready()
		}
		forever()
	}
	var now unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	fmt.Println("listening-at", now.Nano())
	fmt.Println("listening")
	if opts["share"] {
		// The child inherits the listening socket, as an Apache worker
		// does: closing it means ending every process that holds it.
		self, err := os.Executable()
		if err != nil {
			fail("%v", err)
		}
		child := exec.Command(self, "sleep", "listen-child")
		// No Pdeathsig: the child must outlive its parent's kill, as a
		// worker does (the test's cleanup kills every process of the user).
		child.ExtraFiles = []*os.File{os.NewFile(uintptr(fd), "listener")}
		if err := child.Start(); err != nil {
			fail("start child: %v", err)
		}
		fmt.Println("child", child.Process.Pid)
		go child.Wait() // reap it when it dies
	}
	if !opts["onsignal"] {
		ready()
	}
	forever()
}

func connectMode(args []string) {
	if len(args) != 2 {
		fail("usage: connect ADDR PORT")
	}
	family, sa := sockaddr(args[0], atoi(args[1]))
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fail("socket: %v", err)
	}
	if err := unix.Connect(fd, sa); err != nil {
		fmt.Println("connect-error", errnoName(err))
	} else {
		fmt.Println("connected")
	}
	ready()
	forever()
}

func bindLoopMode(args []string) {
	if len(args) != 3 {
		fail("usage: bindloop N ADDR PORT")
	}
	n := atoi(args[0])
	family, sa := sockaddr(args[1], atoi(args[2]))
	var spent time.Duration
	errs := 0
	for range n {
		fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			fail("socket: %v", err)
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		start := time.Now()
		err = unix.Bind(fd, sa) // only the bind is timed: socket() and close() are the same with or without the hook
		spent += time.Since(start)
		if err != nil {
			errs++
		}
		unix.Close(fd)
	}
	fmt.Printf("ns-per-bind %d\n", spent.Nanoseconds()/int64(max(n, 1)))
	fmt.Printf("errors %d\n", errs)
	ready()
	forever()
}
