//go:build linux

package main

// Listeners hidden from /proc/PID/fd, as a hostile customer hides them:
//
//	offender hiddenlisten FAMILY PORT [again]
//	                                    on a thread that did unshare(CLONE_FILES), listen()
//	                                    on a TCP socket (FAMILY 4 or 6) bound to loopback:PORT,
//	                                    or never bound when PORT is "-" (the kernel picks a
//	                                    port inside listen); print "listening-port N" and
//	                                    "listening", or "listen-error ERRNO"; with again,
//	                                    once closed under it, listen() on the same socket
//	                                    again and print "relistening-port N"
//	offender inflight PORT [again]      listen on 127.0.0.1:PORT ("-": unbound) and keep the
//	                                    socket in flight in a unix socketpair (SCM_RIGHTS),
//	                                    taking it back every 0.2 s to accept; print
//	                                    "listening-port N" and "listening"; with again, as
//	                                    hiddenlisten
//
// Both serve each connection with "hi\n", and print "accept-error ERRNO"
// once the listener is closed under them. They say ready first: whatever
// guardd does to them, the harness has read them.

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	modes["hiddenlisten"] = hiddenListenMode
	modes["inflight"] = inflightMode
}

// loopListener returns a TCP socket on loopback (bound to port unless it
// is "-") and whether listen() succeeded (the errno name otherwise).
func loopListener(family, port string) (int, string) {
	af, sa := unix.AF_INET, unix.Sockaddr(nil)
	if family == "6" {
		af = unix.AF_INET6
	}
	if port != "-" {
		if af == unix.AF_INET {
			sa = &unix.SockaddrInet4{Port: atoi(port), Addr: [4]byte{127, 0, 0, 1}}
		} else {
			sa = &unix.SockaddrInet6{Port: atoi(port), Addr: [16]byte{15: 1}}
		}
	}
	fd, err := unix.Socket(af, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fail("socket: %v", err)
	}
	if sa != nil {
		if err := unix.Bind(fd, sa); err != nil {
			return fd, "bind-error " + errnoName(err)
		}
	}
	if err := unix.Listen(fd, 16); err != nil {
		return fd, "listen-error " + errnoName(err)
	}
	return fd, ""
}

func localPort(fd int) int {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		fail("getsockname: %v", err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port
	case *unix.SockaddrInet6:
		return a.Port
	}
	return 0
}

func serve(c int) {
	unix.Write(c, []byte("hi\n"))
	unix.Close(c)
}

func hiddenListenMode(args []string) {
	if len(args) != 2 && (len(args) != 3 || args[2] != "again") {
		fail("usage: hiddenlisten 4|6 PORT|- [again]")
	}
	again := len(args) == 3
	ready()
	go func() {
		// Never unlocked: the thread dies with the goroutine and its
		// private table with it. The main goroutine holds the main thread
		// (main.go), so this is another thread: /proc/PID/fd shows the
		// main thread's table, not this one.
		runtime.LockOSThread()
		if unix.Gettid() == os.Getpid() {
			fail("hiddenlisten: on the main thread")
		}
		if err := unix.Unshare(unix.CLONE_FILES); err != nil {
			fail("unshare(CLONE_FILES): %v", err)
		}
		fd, bad := loopListener(args[0], args[1])
		if bad != "" {
			fmt.Println(bad)
			return
		}
		fmt.Println("listening-port", localPort(fd))
		fmt.Println("listening")
		for {
			c, _, err := unix.Accept(fd)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				fmt.Println("accept-error", errnoName(err))
				if !again {
					return
				}
				again = false
				// The closed socket lost its autobound port: listen()
				// binds it anew.
				if err := unix.Listen(fd, 16); err != nil {
					fmt.Println("relisten-error", errnoName(err))
					return
				}
				fmt.Println("relistening-port", localPort(fd))
				continue
			}
			serve(c)
		}
	}()
	forever()
}

func inflightMode(args []string) {
	if len(args) != 1 && (len(args) != 2 || args[1] != "again") {
		fail("usage: inflight PORT|- [again]")
	}
	again := len(args) == 2
	ready()
	fd, bad := loopListener("4", args[0])
	if bad != "" {
		fmt.Println(bad)
		forever()
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		fail("nonblock: %v", err)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fail("socketpair: %v", err)
	}
	fmt.Println("listening-port", localPort(fd))
	fmt.Println("listening")
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		// In flight: no descriptor table holds the listener now.
		if err := unix.Sendmsg(pair[0], []byte{0}, unix.UnixRights(fd), nil, 0); err != nil {
			fail("sendmsg: %v", err)
		}
		unix.Close(fd)
		time.Sleep(200 * time.Millisecond)
		_, oobn, _, _, err := unix.Recvmsg(pair[1], make([]byte, 1), oob, 0)
		if err != nil {
			fail("recvmsg: %v", err)
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			fail("control message: %v", err)
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			fail("rights: %v", err)
		}
		fd = fds[0]
		for {
			c, _, err := unix.Accept(fd)
			if err == unix.EAGAIN {
				break
			}
			if err != nil {
				fmt.Println("accept-error", errnoName(err))
				if !again {
					forever()
				}
				again = false
				if err := unix.Listen(fd, 16); err != nil {
					fmt.Println("relisten-error", errnoName(err))
					forever()
				}
				fmt.Println("relistening-port", localPort(fd))
				break
			}
			serve(c)
		}
	}
}
