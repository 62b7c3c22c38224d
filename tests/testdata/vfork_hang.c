// vfork_hang: an offender that a SIGSTOP sweep can never settle. It
// vforks a child that never execs or exits; the parent then waits in the
// kernel (wait_for_vfork_done: killable only, shown as state D), so a
// SIGSTOP stays pending on it for as long as the child lives, while SIGKILL
// ends it at once.
//
// Like the Go offender it sets its RLIMIT_NPROC safety net first and
// prints "ready PID NICE" once set up (before the vfork).
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

int main(void) {
	struct rlimit lim = {8, 8};
	struct rlimit cur;
	if (getrlimit(RLIMIT_NPROC, &cur) == 0 && cur.rlim_max < lim.rlim_max)
		lim.rlim_cur = lim.rlim_max = cur.rlim_max; // the net only tightens
	if (setrlimit(RLIMIT_NPROC, &lim) != 0) {
		perror("setrlimit(RLIMIT_NPROC)");
		return 3;
	}
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, 0);
	printf("ready %d %d\n", getpid(), nice);
	fflush(stdout);
	pid_t pid = vfork();
	if (pid == 0) {
		for (;;)
			pause(); // only system calls in the vfork child: it shares the parent's memory
	}
	if (pid < 0) {
		perror("vfork");
		return 1;
	}
	return 0; // never reached while the child lives
}
