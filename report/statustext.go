package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/guardd/guardd/internal/printable"
)

// WriteStatusText writes what the status page shows, for a terminal
// (`guardd top`). With color, filesystems over 80 % and failed actions are
// red; without, they are marked with "!". Every name that comes from the
// host (users, commands, mounts, interfaces, sensors) is escaped: a
// customer's comm or argv may hold terminal escape sequences.
func WriteStatusText(w io.Writer, s *HostSummary, color bool) error {
	if s == nil {
		_, err := fmt.Fprintln(w, "guardd: no status yet (the daemon collects its first picture a few seconds after it starts)")
		return err
	}
	red, bold, reset := "", "", ""
	if color {
		red, bold, reset = "\x1b[1;31m", "\x1b[1m", "\x1b[0m"
	}
	mark := func(hot bool, text string) string {
		switch {
		case !hot:
			return text
		case color:
			return red + text + reset
		}
		return text + " !"
	}
	var b strings.Builder
	esc := printable.Escape
	fmt.Fprintf(&b, "%s%s%s  %s  load %.2f %.2f %.2f (%d CPUs)  %d processes, %d users\n", bold, esc(s.Host), reset,
		s.Time.Local().Format("2006-01-02 15:04:05"), s.Load1, s.Load5, s.Load15, s.NCPU, s.Processes, s.Users)
	fmt.Fprintf(&b, "file table %s (%d of %d)", mark(s.FilesOpenPercent > HotFilesystemPercent, fmt.Sprintf("%.1f%%", s.FilesOpenPercent)), s.FilesOpen, s.FilesMax)
	if k := s.Sockets; k != nil {
		fmt.Fprintf(&b, "   sockets %d (TCP %d in use, %d time-wait, %d orphaned; buffers %s", k.Used, k.TCPInUse+k.TCP6InUse, k.TCPTimeWait, k.TCPOrphan, formatBytes(k.TCPMemBytes))
		if k.TCPMemMaxBytes > 0 {
			fmt.Fprintf(&b, ", %.1f%% of tcp_mem", k.BufferPercent)
		}
		b.WriteString(")")
	}
	b.WriteString("\n")

	users := func(title string, rows []UserSummary, inodes bool) {
		fmt.Fprintf(&b, "\n%s%s%s\n", bold, title, reset)
		if rows == nil {
			b.WriteString("not counted\n")
			return
		}
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		head := " #\tUSER\tUID\tCPU%\tPROCS\tMEMORY\t"
		if inodes {
			head += "INODES\t"
		}
		fmt.Fprintln(tw, head)
		for i, u := range rows {
			fmt.Fprintf(tw, " %d\t%s\t%d\t%.1f\t%d\t%s\t", i+1, esc(u.User), u.UID, u.CPUPercent, u.Processes, formatBytes(u.RSSBytes))
			if inodes {
				fmt.Fprintf(tw, "%d\t", u.Inodes)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	users("USERS BY CPU", s.TopCPU, false)
	users("USERS BY PROCESSES", s.TopProcesses, false)
	users("USERS BY INODES", s.TopInodes, true)
	fmt.Fprintf(&b, "\n%sUSERS BY TRAFFIC%s\n", bold, reset)
	if s.TopTraffic == nil {
		b.WriteString("not counted\n")
	} else {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, " #\tUSER\tUID\tOUT\tIN\tCONNS\t")
		for i, u := range s.TopTraffic {
			fmt.Fprintf(tw, " %d\t%s\t%d\t%s\t%s\t%d\t\n", i+1, esc(u.User), u.UID, formatRate(u.TxBytesPerSec), formatRate(u.RxBytesPerSec), u.Connections)
		}
		tw.Flush()
	}
	fmt.Fprintf(&b, "\n%sUSERS HELD BACK BY THEIR LIMITS%s\n", bold, reset)
	switch {
	case s.TopLimited == nil:
		b.WriteString("not isolated on this host\n")
	case len(s.TopLimited) == 0:
		b.WriteString("none in the last tick\n")
	default:
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, " #\tUSER\tUID\tCPU THROTTLED\tMEM FAULTS\tREFUSED FORKS\tCPU%\tGROUP MEMORY\t")
		for i, u := range s.TopLimited {
			fmt.Fprintf(tw, " %d\t%s\t%d\t%.1f%%\t%s\t%s\t%.1f\t%s\t\n", i+1, esc(u.User), u.UID, u.CPUThrottledPercent,
				formatCount(u.MemoryFaults), formatCount(u.ProcsFaults), u.CPUPercent, formatBytes(u.MemoryBytes))
		}
		tw.Flush()
	}

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\n%sLONGEST-RUNNING CUSTOMER PROCESSES%s\n", bold, reset)
	fmt.Fprintln(tw, "PID\tUSER\tRUNNING FOR\tCPU%\tMEMORY\tCOMMAND")
	for _, p := range s.LongRunners {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.1f\t%s\t%s\n", p.PID, esc(p.User), formatDuration(time.Duration(p.AgeSeconds*float64(time.Second)), "en"),
			p.CPUPercent, formatBytes(p.RSSBytes), truncate(70, esc(orString(p.Cmdline, p.Comm))))
	}
	fmt.Fprintf(tw, "\n%sRECENT ACTIONS%s\n", bold, reset)
	if len(s.Recent) == 0 {
		fmt.Fprintln(tw, "none since guardd started")
	} else {
		fmt.Fprintln(tw, "TIME\tRULE\tACTION\tOUTCOME\tUSER\tPID\tPROCESS")
		for _, ev := range s.Recent {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", ev.Time.Local().Format("15:04:05"), esc(ev.Rule), esc(ev.Action),
				mark(ev.Outcome == OutcomeFailed, esc(ev.Outcome)), esc(ev.User), ev.PID, esc(ev.Comm))
		}
	}
	fmt.Fprintf(tw, "\n%sNETWORK%s\n", bold, reset)
	if s.Network == nil {
		fmt.Fprintln(tw, "not available")
	} else {
		fmt.Fprintln(tw, "INTERFACE\tIN\tOUT\tRECEIVED\tSENT")
		for _, n := range s.Network {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", esc(n.Interface), formatRate(n.RxBytesPerSec), formatRate(n.TxBytesPerSec), formatBytes(n.RxBytes), formatBytes(n.TxBytes))
		}
	}
	fmt.Fprintf(tw, "\n%sTEMPERATURES AND FANS%s\n", bold, reset)
	if s.Temperatures == nil && s.Fans == nil {
		fmt.Fprintln(tw, "this hardware exposes no sensors")
	}
	for _, x := range s.Temperatures {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", esc(x.Chip), esc(x.Label), mark(x.Crit > 0 && x.Value >= x.Crit, fmt.Sprintf("%.1f °C", x.Value)))
	}
	for _, x := range s.Fans {
		fmt.Fprintf(tw, "%s\t%s\t%.0f RPM\n", esc(x.Chip), esc(x.Label), x.Value)
	}
	fmt.Fprintf(tw, "\n%sFILESYSTEMS%s\n", bold, reset)
	if s.Filesystems == nil {
		fmt.Fprintln(tw, "not available")
	} else {
		fmt.Fprintln(tw, "MOUNTED ON\tTYPE\tSIZE\tUSE%\tINODES")
		for _, f := range s.Filesystems {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f%%\n", esc(f.Mount), esc(f.Type), formatBytes(f.SizeBytes),
				mark(f.UsedPercent > HotFilesystemPercent, fmt.Sprintf("%.1f%%", f.UsedPercent)), f.InodesUsedPercent)
		}
	}
	tw.Flush()
	_, err := io.WriteString(w, b.String())
	return err
}

func orString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
