package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// selfNice is the nice value guardd gives itself: a fork storm puts
// hundreds of runnable processes next to it, and the guard must still get
// the CPU to end them (the systemd unit sets the same with Nice=).
const selfNice = -10

// protectSelf makes the kernel's OOM killer pass guardd over and raises its
// CPU priority: the daemon that stops runaway customers must outlive and
// outrun them (DESIGN.md §4, rule 8).
func protectSelf() error {
	var errs []error
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0); err != nil {
		errs = append(errs, fmt.Errorf("OOM score: %w", err))
	}
	// nice is per thread on Linux and new threads inherit their creator's:
	// set it on every thread there is now.
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		cur, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err == nil && 20-cur <= selfNice {
			continue // already at least as high (the raw syscall returns 20-nice)
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, selfNice); err != nil && !errors.Is(err, unix.ESRCH) {
			return errors.Join(append(errs, fmt.Errorf("nice %d: %w", selfNice, err))...)
		}
	}
	return errors.Join(errs...)
}

// releaseStartupPages asks the kernel to page out guardd's read-only
// mappings of its own binary (code and constant data) with
// madvise(MADV_PAGEOUT, Linux 5.4+), and returns by how much its RssFile
// fell. Package initialisation touches code all over a 25 MB binary, and
// the kernel maps up to 64 KiB around every page fault (fault-around), so
// a freshly started guardd holds about 14 MiB of its file, most of which
// it never runs again; the pages it does run fault back in within a tick.
// Clean file pages: nothing is lost, at worst a few page faults.
func releaseStartupPages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	before := rssFile()
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// start-end perms offset dev inode path
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[5] != exe || strings.ContainsRune(f[1], 'w') {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		// The raw syscall: the region is not Go memory, so no []byte for it.
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); e != 0 {
			errs = append(errs, fmt.Errorf("madvise %s: %w", f[0], e))
		}
	}
	return before - rssFile(), errors.Join(errs...)
}

// rssFile returns RssFile from /proc/self/status, in bytes; 0 if unknown.
func rssFile() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	_, rest, ok := bytes.Cut(b, []byte("RssFile:"))
	if !ok {
		return 0
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(line)), " kB"), 10, 64)
	return kb << 10
}
