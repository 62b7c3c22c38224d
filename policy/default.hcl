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
# a process "sshd", but cannot make it run /usr/sbin/sshd.
protect {
  exes = [
    "/usr/sbin/sshd",                 # login sessions run as the customer
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
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

# Customer processes may not run for more than a day (cron jobs and CGI
# scripts that hang, forgotten daemons). Zombies cannot be killed; their
# parents are.
rule "long-runner" {
  class = "customers"
  when  = proc.age_seconds > 86400 && proc.state != "Z"
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
