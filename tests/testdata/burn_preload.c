// burn_preload: a library that, preloaded (LD_PRELOAD) into any program,
// spins in its constructor: customer code running inside a binary the
// policy protects. Like the offenders it sets its RLIMIT_NPROC safety net
// first and prints "ready PID NICE" before it burns.
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

__attribute__((constructor)) static void burn(void) {
	struct rlimit lim = {64, 64};
	struct rlimit cur;
	if (getrlimit(RLIMIT_NPROC, &cur) == 0 && cur.rlim_max < lim.rlim_max)
		lim.rlim_cur = lim.rlim_max = cur.rlim_max;
	if (setrlimit(RLIMIT_NPROC, &lim) != 0)
		_exit(3);
	errno = 0;
	printf("ready %d %d\n", getpid(), getpriority(PRIO_PROCESS, 0));
	fflush(stdout);
	for (;;) {
	}
}
