// pthread_exit: an offender whose main thread exits while another thread
// runs on. The kernel then shows the leader as a zombie (/proc/PID/stat
// state Z) with no exe, command line or descriptors, while the process
// lives on in its other thread.
//
// Usage: pthread_exit burn|sleep [FDS [unshare|shared [keep]]]
//   burn    the thread spins; sleep: it blocks
//   FDS     the thread opens that many descriptors (of /dev/null)
//   unshare it first gives itself a descriptor table of its own
//           (unshare(CLONE_FILES)), which /proc/PID/fd does not show
//   keep    the main thread does not exit but waits (a control)
//
// Like the Go offender it sets its RLIMIT_NPROC safety net first, prints
// "ready PID NICE" once set up, and never forks.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int burn, nfds, priv, keep;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int set_up;

static void *run(void *arg) {
	(void)arg;
	if (priv && unshare(CLONE_FILES) != 0) {
		perror("unshare(CLONE_FILES)");
		exit(3);
	}
	for (int i = 0; i < nfds; i++) {
		if (open("/dev/null", O_RDONLY | O_CLOEXEC) < 0) {
			perror("open /dev/null");
			exit(3);
		}
	}
	pthread_mutex_lock(&mu);
	set_up = 1;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	for (;;) {
		if (!burn)
			pause();
	}
	return NULL;
}

int main(int argc, char **argv) {
	struct rlimit lim = {64, 64};
	struct rlimit cur;
	if (getrlimit(RLIMIT_NPROC, &cur) == 0 && cur.rlim_max < lim.rlim_max)
		lim.rlim_cur = lim.rlim_max = cur.rlim_max; // the net only tightens
	if (setrlimit(RLIMIT_NPROC, &lim) != 0) {
		perror("setrlimit(RLIMIT_NPROC)");
		return 3;
	}
	if (argc < 2 || (strcmp(argv[1], "burn") != 0 && strcmp(argv[1], "sleep") != 0)) {
		fprintf(stderr, "usage: pthread_exit burn|sleep [FDS [unshare|shared [keep]]]\n");
		return 2;
	}
	burn = strcmp(argv[1], "burn") == 0;
	if (argc > 2)
		nfds = atoi(argv[2]);
	if (argc > 3)
		priv = strcmp(argv[3], "unshare") == 0;
	if (argc > 4)
		keep = strcmp(argv[4], "keep") == 0;
	if (nfds > 0) {
		struct rlimit nofile = {nfds + 64, nfds + 64};
		setrlimit(RLIMIT_NOFILE, &nofile); // raising needs root: best effort
	}
	pthread_t t;
	if (pthread_create(&t, NULL, run, NULL) != 0) {
		perror("pthread_create");
		return 3;
	}
	pthread_mutex_lock(&mu);
	while (!set_up)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, 0);
	printf("ready %d %d\n", getpid(), nice);
	fflush(stdout);
	if (keep)
		for (;;)
			pause();
	pthread_exit(NULL);
}
