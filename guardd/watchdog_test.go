package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWatchdogHeartbeat: the loop feeds the watchdog between ticks
// whatever the interval (an hour here), a stuck tick stops the pings
// until it returns, and a tick that could not sample stops them too.
func TestWatchdogHeartbeat(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	var d *daemonState
	msgs := make(chan string, 1024)
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	// mark sends a datagram of its own and skips everything before it:
	// pings guardd sent before the moment of interest may still be queued.
	mark := func() {
		t.Helper()
		c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("MARK"))
		c.Close()
		for m := range msgs {
			if m == "MARK" {
				return
			}
		}
	}
	noPing := func(why string) {
		t.Helper()
		select {
		case m := <-msgs:
			t.Fatalf("%q %s", m, why)
		case <-time.After(10 * d.watchdogEvery): // ten heartbeat periods
		}
	}

	stuck, release, entered, left := make(chan bool, 1), make(chan struct{}), make(chan struct{}, 1), make(chan struct{}, 1)
	d = &daemonState{log: slog.New(slog.NewTextHandler(io.Discard, nil)), healthy: true,
		ticker: time.NewTicker(time.Hour), wake: make(chan struct{}, 1), watchdogEvery: 20 * time.Millisecond}
	defer d.ticker.Stop()
	d.tickFn = func(time.Time) {
		switch <-stuck {
		case true:
			entered <- struct{}{}
			<-release
		case false:
			d.healthy = false // as tick does when sampling fails
			left <- struct{}{}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.loop(ctx, loopSources{}); close(done) }()
	defer func() { cancel(); <-done }()

	waitPings := func(n int) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for n > 0 {
			select {
			case m := <-msgs:
				if strings.Contains(m, "WATCHDOG=1") {
					n--
				}
			case <-timeout:
				t.Fatalf("fewer than %d watchdog pings in 10s between ticks of an hour", n)
			}
		}
	}
	waitPings(5)

	stuck <- true
	d.Wake()
	<-entered
	mark()
	noPing("while the tick was stuck")
	close(release)
	waitPings(3) // alive again once the tick returns

	stuck <- false
	d.Wake()
	<-left
	mark()
	noPing("after a tick that could not sample")
}
