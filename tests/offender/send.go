//go:build linux

package main

// A customer's bulk sender (a backup to a remote host, a flood).
//
//	offender send ADDR PORT BYTES [CONNS]  open CONNS TCP connections (default 1), print
//	                                       "connected CONNS"; then, each time the peer sends a
//	                                       byte on the first one, send BYTES on it and print
//	                                       "sent BYTES"; stay until the peer closes it

import (
	"fmt"
	"net"
	"os"
)

func init() { modes["send"] = sendMode }

func sendMode(args []string) {
	if len(args) != 3 && len(args) != 4 {
		fail("usage: send ADDR PORT BYTES [CONNS]")
	}
	n, conns := atoi(args[2]), 1
	if len(args) == 4 {
		conns = atoi(args[3])
	}
	addr := net.JoinHostPort(args[0], args[1])
	var cs []net.Conn
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fail("dial %s: %v", addr, err)
		}
		cs = append(cs, c)
	}
	fmt.Println("connected", conns)
	ready()
	buf := make([]byte, 64<<10)
	var one [1]byte
	for {
		if _, err := cs[0].Read(one[:]); err != nil {
			os.Exit(0) // the peer is done
		}
		for left := n; left > 0; {
			w, err := cs[0].Write(buf[:min(left, len(buf))])
			if err != nil {
				fail("send: %v", err)
			}
			left -= w
		}
		fmt.Println("sent", n)
	}
}
