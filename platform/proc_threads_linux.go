package platform

import (
	"encoding/binary"
	"errors"
	"strconv"
	"unique"

	"golang.org/x/sys/unix"
)

// Threads that hide a process's facts. A thread group lives while any of
// its threads does: after pthread_exit in main, /proc/PID shows a zombie
// leader with no exe, command line or descriptors, while the other
// threads run on; /proc/PID/task/TID shows them. And a thread that did
// unshare(CLONE_FILES) has a descriptor table of its own, which
// /proc/PID/fd (the leader's) does not list.

const (
	// maxTasksRead bounds the threads looked at per process (customers'
	// threads count against their RLIMIT_NPROC anyway).
	maxTasksRead = 512
	// maxFDTables bounds the distinct descriptor tables compared against,
	// so that a process of many private tables costs at most
	// maxTasksRead × maxFDTables kcmp calls.
	maxFDTables = 32
	kcmpFiles   = 2 // KCMP_FILES, linux/kcmp.h
)

// leaderExited reports whether a stat read of a thread-group leader says
// the leader is gone while other threads live: state Z with more than one
// thread (a true zombie has one, its own).
func leaderExited(st *Stat) bool { return st.State == 'Z' && st.Threads > 1 }

// listTasks appends the thread ids of pid (from /proc/PID/task) to tids,
// at most max of them.
func listTasks(proc int, pid int32, buf []byte, tids []int32, max int) ([]int32, error) {
	fd, err := unix.Openat(proc, strconv.Itoa(int(pid))+"/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return tids, err
	}
	defer unix.Close(fd)
	for len(tids) < max {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return tids, err
		}
		if n <= 0 {
			break
		}
		b := buf[:n]
		for len(b) >= 19 && len(tids) < max {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return tids, errors.New("read task dir: malformed dirent")
			}
			name := b[19:reclen]
			if i := indexNUL(name); i >= 0 {
				name = name[:i]
			}
			if tid, ok := parseUint(name); ok && tid > 0 && tid < 1<<31 {
				tids = append(tids, int32(tid))
			}
			b = b[reclen:]
		}
	}
	return tids, nil
}

// liveThread returns a thread of pid other than its leader, or 0.
func liveThread(proc int, pid int32, buf []byte) int32 {
	var arr [4]int32
	tids, _ := listTasks(proc, pid, buf, arr[:0], len(arr))
	for _, tid := range tids {
		if tid != pid {
			return tid
		}
	}
	return 0
}

// taskDir is the directory, relative to /proc, to read per-thread files
// of pid from: its own, or that of the live thread tid when the leader
// exited.
func taskDir(pid, tid int32) string {
	if tid == 0 {
		return strconv.Itoa(int(pid))
	}
	return strconv.Itoa(int(pid)) + "/task/" + strconv.Itoa(int(tid))
}

// fdCount returns the number of descriptors in dir's table (dir relative
// to /proc), or -1.
func fdCount(proc int, dir string, buf []byte) int32 {
	var st unix.Stat_t
	if err := unix.Fstatat(proc, dir+"/fd", &st, 0); err != nil {
		return -1
	}
	if st.Size > 0 {
		return int32(min(st.Size, 1<<31-1))
	}
	// Kernels before 6.2 report size 0: count the entries instead.
	n, err := countDir(proc, dir+"/fd", buf)
	if err != nil {
		return -1
	}
	return int32(min(n, 1<<31-1))
}

// sameFiles reports whether threads a and b share one descriptor table
// (kcmp(2) KCMP_FILES); ok is false when the kernel cannot tell (no
// CONFIG_KCMP, or no permission).
func sameFiles(a, b int32) (same, ok bool) {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(a), uintptr(b), kcmpFiles, 0, 0, 0)
	if errno != 0 {
		return false, false
	}
	return r == 0, true
}

// fdScratch is what countAllFDs reuses between calls.
type fdScratch struct {
	tids   []int32
	reps   []int32 // a thread of each distinct table found
	counts []int32 // and its descriptor count
}

// countAllFDs counts the descriptors of pid over every distinct table
// its threads have, and how many tables that is. Only a process with more
// than one thread can have more than one table, so a single-threaded one
// costs one stat. skipLeader leaves out the leader (exited: no table).
func countAllFDs(proc int, pid int32, threads int32, skipLeader bool, buf []byte, sc *fdScratch) (fds, tables int32) {
	if threads <= 1 && !skipLeader {
		n := fdCount(proc, strconv.Itoa(int(pid)), buf)
		if n < 0 {
			return -1, 0
		}
		return n, 1
	}
	tids, err := listTasks(proc, pid, buf, sc.tids[:0], maxTasksRead)
	sc.tids = tids
	if err != nil && len(tids) == 0 {
		return -1, 0
	}
	sc.reps, sc.counts = sc.reps[:0], sc.counts[:0]
	var total int64
	for _, tid := range tids {
		if skipLeader && tid == pid {
			continue
		}
		known, byCount := false, false
		for _, r := range sc.reps {
			same, ok := sameFiles(r, tid)
			if !ok {
				byCount = true
				break
			}
			if same {
				known = true
				break
			}
		}
		if known || len(sc.reps) >= maxFDTables {
			continue
		}
		n := fdCount(proc, taskDir(pid, tid), buf)
		if n < 0 {
			continue // exited meanwhile
		}
		if byCount {
			// Without kcmp a table is told apart by its size: equal sizes
			// are taken for one table (undercounts, never overcounts).
			for _, c := range sc.counts {
				if c == n {
					known = true
					break
				}
			}
			if known {
				continue
			}
		}
		sc.reps = append(sc.reps, tid)
		sc.counts = append(sc.counts, n)
		total += int64(n)
	}
	if len(sc.reps) == 0 {
		return -1, 0
	}
	return int32(min(total, 1<<31-1)), int32(len(sc.reps))
}

// readLibraries reads the mapped files and the loader environment of the
// process in dir (relative to /proc) into p.
func readLibraries(proc int, dir string, p *Process, buf []byte) {
	in := &Inspection{} // fresh: a copy of the old may still be read
	p.Inspection = in
	if b, err := readWhole(proc, dir+"/maps", buf, 4<<20); err == nil {
		paths, deleted := ParseMaps(b, p.Exe)
		for i, path := range paths {
			mf := MappedFile{Path: unique.Make(path).Value(), Deleted: deleted[i], Owner: -1}
			var st unix.Stat_t
			if !mf.Deleted && unix.Stat(path, &st) == nil {
				mf.Owner = int64(st.Uid)
			}
			in.Libraries = append(in.Libraries, mf)
		}
	}
	if b, err := readWhole(proc, dir+"/environ", buf, 256<<10); err == nil {
		in.LoaderEnv = ParseLoaderEnv(b)
	}
}

// readWhole reads /proc/NAME to its end or to limit bytes, starting in
// buf and growing past it when needed.
func readWhole(proc int, name string, buf []byte, limit int) ([]byte, error) {
	fd, err := unix.Openat(proc, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	out := buf[:0]
	for len(out) < limit {
		if len(out) == cap(out) {
			out = append(out, make([]byte, min(cap(out)+4096, limit)-len(out))...)[:len(out)]
		}
		n, err := unix.Read(fd, out[len(out):cap(out)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		out = out[:len(out)+n]
	}
	return out, nil
}
