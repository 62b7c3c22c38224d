# guardd default policy for a shared web-hosting server.
#
# guardd runs with this policy when no other is given; `guardd default-policy`
# prints it as a starting point. Every attribute is documented in the README.

guardd {
  interval    = "1s"                            # sampling period
  mode        = "enforce"                       # or "monitor": decide and log, touch nothing
  audit_log   = "/var/log/guardd/audit.jsonl"   # one JSON line per decision
  # state_dir = "/var/lib/guardd"               # escalation state survives restarts (/var/db/guardd on FreeBSD)
  min_uid     = 1000                            # uids below are system accounts: never touched
  fd_interval = "10s"                           # how often open descriptors are counted
}

# Customer accounts. uid 0 and uids below min_uid are protected whatever a
# class says.
class "customers" {
  uids = ["1000-59999"]
}

# Never touched, whatever a rule says. Executables are matched by the path of
# the running binary (/proc/PID/exe), never by its name: a customer can call
# a process "sshd", but cannot make it run /usr/sbin/sshd. Nor does running
# one protect: a process is protected by its executable only when a root
# process running a protected executable (the service's master) started it,
# or a process so protected did (sftp-server under a session), and nothing a
# customer can write is loaded into it (LD_PRELOAD). So the masters are
# listed too.
protect {
  exes = [
    "/usr/sbin/sshd",                 # login sessions run as the customer
    "/usr/lib/openssh/sshd-session",  # OpenSSH 9.8 and later
    "/usr/libexec/openssh/sshd-session",
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/sbin/dovecot",              # the master (root): what starts the below
    "/usr/local/sbin/dovecot",
    "/usr/lib/dovecot/**",            # IMAP/POP3 processes run as the mail user for hours
    "/usr/libexec/dovecot/**",
    "/usr/local/libexec/dovecot/**",
  ]
}

# A process that burns more than 80 % of a core for 5 minutes gets the lowest
# priority; if it is still at it half an hour later, it is terminated (TERM,
# then KILL after 10 s).
rule "cpu-hog" {
  class    = "customers"
  when     = proc.cpu_percent > 80
  for      = "5m"
  cooldown = "1h"
  renice {
    nice = 19
  }
  kill {
    after  = "30m"
    signal = "TERM"
    grace  = "10s"
  }
}

# A customer whose processes together burn more than 80 % of a core for 10
# minutes gets the lowest priority on all of them (their children inherit
# it). This catches what cpu-hog cannot: a burner that hands its work to a
# new process before cpu-hog's 5 minutes are up (pid hopping), and many
# processes that each stay under 80 %. Renice only: nothing is killed.
rule "user-cpu-hog" {
  class    = "customers"
  when     = user.cpu_percent > 80
  for      = "10m"
  cooldown = "1h"
  renice {
    nice = 19
  }
}

# Customer processes may not run for more than a day (cron jobs and CGI
# scripts that hang, forgotten daemons): after a day and 10 minutes more
# they are terminated (TERM, then KILL after 10 s). Zombies cannot be
# killed; their parents are (see zombies). Spared is what a hosting server
# runs as the customer on purpose, told by where it came from, never by a
# name the customer chooses:
#   - php-fpm pool workers: their parent is the root php-fpm master, which
#     recycles them itself (pm.max_requests); what a worker starts has the
#     worker for parent and is not spared;
#   - everything in a live login session: a protected sshd session is among
#     its ancestors (proc.in_session), e.g. the shell, an attached tmux or
#     screen client, a long rsync. Once the session ends, what is left is
#     orphaned and counts like any other process -- so does a detached tmux
#     or screen server and what runs in it (a customer's IRC bot lives
#     there). To spare those too, add
#       && !glob(proc.parent_exe, ["/usr/bin/tmux", "/usr/bin/screen"])
rule "long-runner" {
  class = "customers"
  when  = (proc.age_seconds > 86400 && proc.state != "Z" && !proc.in_session
    && !(proc.parent_uid == 0 && glob(proc.parent_exe, [
      "/usr/sbin/php-fpm*",                      # Debian, Ubuntu, RHEL
      "/usr/local/sbin/php-fpm*",                # FreeBSD, source builds
      "/opt/cpanel/ea-php*/root/usr/sbin/php-fpm",
      "/opt/alt/php*/usr/sbin/php-fpm",          # CloudLinux
      "/opt/remi/php*/root/usr/sbin/php-fpm",
      "/opt/plesk/php/*/sbin/php-fpm",
    ])))
  for   = "10m"
  kill {}
}

# A process holding thousands of descriptors, or many while the system file
# table is nearly full ("16,000 files should open, yet open() fails"), is
# reported at once and terminated if it still leaks an hour later.
rule "fd-leak" {
  class = "customers"
  when  = proc.fds > 4000 || (host.files_open_percent > 80 && proc.fds > 1000)
  for   = "1m"
  report {}
  kill {
    after = "1h"
  }
}

# An executable running from a temp directory, or deleted after it started,
# is the classic sign of a dropped-in cracking kit. Monitor mode: the audit
# log says "would kill"; set mode = "enforce" once the log shows no false
# positives (a binary replaced by a package upgrade also shows as deleted).
rule "temp-exe" {
  class = "customers"
  mode  = "monitor"
  when  = glob(proc.exe, ["/tmp/**", "/var/tmp/**", "/dev/shm/**"]) || proc.exe_deleted
  kill {}
}

# A standing cap on every customer's processes, kernel-enforced: guardd sets
# RLIMIT_NPROC (soft and hard) on each of their processes as it first sees
# it, so the fork beyond the cap fails before any rule has to fire. It
# counts threads too.
limits "customers" {
  class = "customers"
  procs = 400
}

# A fork storm (a fork bomb, a runaway CGI tree, a daemon respawning in a
# loop) is ended at once: every process of the user gets SIGKILL in one
# kill(-1) as that user, which no fork can outrun. A parallel build (make
# -j8) forks a few hundred processes a second at most and holds a few dozen.
rule "fork-storm" {
  class    = "customers"
  when     = user.forks_per_sec > 1000 || user.procs > 350
  cooldown = "10s"
  kill_user {}
}

# A parent that leaves its exited children unreaped (zombies hold process
# slots) gets SIGCHLD; if it still has not reaped them 30 s later it is
# ended, so that init inherits and reaps them.
rule "zombies" {
  class = "customers"
  when  = proc.zombie_children > 20
  for   = "1m"
  reap {
    grace = "30s"
  }
}

# Temp trees whose inodes are counted per customer (user.inodes): fully
# every 5 minutes, and watched in between (user.inode_growth_per_min).
inodes {
  dirs   = ["/tmp", "/var/tmp", "/dev/shm"]
  period = "5m"
}

# File locks, the holder first. flock(2) works on a read-only descriptor, so
# any customer can lock another's 0644 lock file, or create the lock file a
# victim's cron job will use in /tmp first and hold it forever: killing the
# waiting victim would finish the attack. The ladder:
#   1. lock-squatter: a holder that keeps a lock on another uid's file while
#      others wait for a minute, or keeps processes of other uids waiting
#      for 5 minutes, is ended;
#   2. lock-holder: a holder idle on a lock its own processes waited on for
#      5 minutes is reported;
#   3. lock-waiter: a waiter blocked for 10 minutes is ended -- the last
#      resort, for a holder nobody can act on (its own lock, a system or
#      protected process, an OFD lock without a holder).
rule "lock-squatter" {
  class = "customers"
  when  = proc.lock_foreign_seconds > 60 || proc.lock_blocking_others_seconds > 300
  kill {}
}

# A process blocked on a file lock for 10 minutes (a CGI script behind
# another that never releases its lock) will not finish its request: it
# is ended, so waiters do not pile up for hours holding memory and slots.
rule "lock-waiter" {
  class = "customers"
  when  = proc.lock_wait_seconds > 600
  kill {}
}

# The cause: a process that, idle, holds a lock others have waited on for
# 5 minutes is reported (with the file and its waiters).
rule "lock-holder" {
  class = "customers"
  when  = proc.lock_blocking > 0 && proc.lock_blocking_seconds > 300 && proc.cpu_percent < 1
  report {}
}

# A customer whose temp files run into the hundred thousands, or grow by
# 10,000 a minute, is reported, and its own files there that nobody has
# read or written for a day are removed (never another user's, never
# through a symlink, never on another filesystem, never one another
# user's process has open).
rule "tmp-spewer" {
  class = "customers"
  when  = user.inodes > 100000 || user.inode_growth_per_min > 10000
  report {}
  clean_tmp {
    dirs       = ["/tmp", "/var/tmp", "/dev/shm"]
    older_than = "24h"
  }
}

# Any local filesystem more than 90 % full, in space or in inodes, for 5
# minutes is reported.
rule "disk-full" {
  when = fs.used_percent > 90 || fs.inodes_used_percent > 90
  for  = "5m"
  report {}
}

# Customers do not run their own servers (an Apache on 8080, an SMTP daemon,
# an IRC bot): a bind() outside the allow list fails with EPERM (a cgroup BPF
# hook in the kernel), and a listener opened anyway (before guardd started,
# or where the kernel cannot refuse) is killed within a tick. Monitor mode:
# the audit log says "would refuse" and "would kill". Allow what your
# customers need first (an FTP server's passive ports, where its sessions run
# as the customer: "*:49152-65534"), then set mode = "enforce".
listen "customers" {
  class = "customers"
  allow = []
  block = "bind"
  mode  = "monitor"
}

# Customers send mail through the local MTA, not straight to the world (a
# spam script, a cracked CMS, their own SMTP daemon get the host's addresses
# blacklisted): a connect() to port 25, 465 or 587 of anything but the local
# host fails with EPERM (a cgroup BPF hook in the kernel). Monitor mode: the
# audit log says "would refuse"; set mode = "enforce" once the log shows
# no customer that must keep doing it (add its relay to allow).
connect "customers" {
  class = "customers"
  deny  = ["*:25", "*:465", "*:587"]
  allow = ["127.0.0.0/8:*", "[::1]:*"]
  mode  = "monitor"
}
