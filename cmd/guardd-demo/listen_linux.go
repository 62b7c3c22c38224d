package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/guardd/guardd/report"
	"golang.org/x/sys/unix"
)

// The demo's listener: a customer's own web server on 8080. The default
// policy's listen block monitors, so the audit log says what would happen:
// the bind() would be refused, the listener would be killed.

const demoListenPort = 8080

func listenOffenders() []*demoOffender {
	o := &demoOffender{label: "customer's own server on 8080", expect: "listen customers (monitor): would refuse, would kill",
		file: "httpd", argv0: "httpd", mode: "listen", args: []string{strconv.Itoa(demoListenPort)}}
	var killSeen time.Time
	o.done = func(evs []report.Event) bool {
		select {
		case <-o.exited:
			return true // its bind failed (8080 taken on this host): nothing listens
		default:
		}
		refused, killed := false, false
		for _, ev := range evs {
			if ev.PID != o.id.PID || ev.StartTime != o.id.StartTime || ev.Outcome != report.OutcomeWouldDo {
				continue
			}
			refused = refused || ev.Action == "refuse-bind"
			killed = killed || ev.Action == "kill"
		}
		if killed && killSeen.IsZero() {
			killSeen = time.Now()
		}
		// Both lines come in the same tick; without a bind hook (an old
		// kernel) only the kill line does.
		return refused && killed || killed && time.Since(killSeen) > 2*time.Second
	}
	return []*demoOffender{o}
}

func init() {
	// listen PORT: say ready, then, a few seconds later (guardd is running
	// by then: the demo starts it after its offenders), bind 0.0.0.0:PORT
	// and listen, as a customer's Apache would; exit 1 if the bind fails.
	demoModes["listen"] = func(args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("usage: _offender listen PORT")
		}
		port, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		fmt.Printf("ready %d\n", os.Getpid())
		time.Sleep(3 * time.Second)
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port}); err != nil {
			return fmt.Errorf("bind 0.0.0.0:%d: %w", port, err)
		}
		if err := unix.Listen(fd, 16); err != nil {
			return err
		}
		select {}
	}
}
