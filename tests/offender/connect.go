//go:build linux

package main

// Offenders that send mail straight to the world (a spam script, a cracked
// CMS) and customers' ordinary clients.
//
//	offender dial tcp|udp ADDR PORT [N]  connect (tcp) or send a datagram without connecting
//	                                     (udp) N times (default 1), each on a fresh socket; print
//	                                     "dial RESULT COUNT" per result (ok or the errno name),
//	                                     sorted
//	offender http ADDR PORT              GET / over HTTP; print "http-status CODE" or
//	                                     "http-error ERR"

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	modes["dial"] = dialMode
	modes["http"] = httpMode
}

func dialMode(args []string) {
	if len(args) != 3 && len(args) != 4 {
		fail("usage: dial tcp|udp ADDR PORT [N]")
	}
	n := 1
	if len(args) == 4 {
		n = atoi(args[3])
	}
	typ := unix.SOCK_STREAM
	switch args[0] {
	case "tcp":
	case "udp":
		typ = unix.SOCK_DGRAM
	default:
		fail("dial: protocol %q", args[0])
	}
	family, sa := sockaddr(args[1], atoi(args[2]))
	results := map[string]int{}
	for range n {
		fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			fail("socket: %v", err)
		}
		if typ == unix.SOCK_DGRAM {
			err = unix.Sendto(fd, []byte("HELO x\r\n"), 0, sa)
		} else {
			err = unix.Connect(fd, sa)
		}
		unix.Close(fd)
		r := "ok"
		if err != nil {
			r = errnoName(err)
		}
		results[r]++
	}
	keys := make([]string, 0, len(results))
	for k := range results {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Println("dial", k, results[k])
	}
	ready()
	forever()
}

func httpMode(args []string) {
	if len(args) != 2 {
		fail("usage: http ADDR PORT")
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(args[0], args[1]) + "/")
	if err != nil {
		fmt.Println("http-error", err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println("http-status", resp.StatusCode)
	}
	ready()
	forever()
}
