# Every function of the condition language, as an admin would use it.
class "customers" {
  uids = ["1000-59999"]
}

rule "dropped-kit" {
  class = "customers"
  mode  = "monitor"
  when = (
    glob(proc.exe, ["/tmp/**", "/var/tmp/**", "/dev/shm/**", "/home/*/.cache/?*"])
    || startswith(proc.exe, "/run/user/")
    || endswith(proc.exe, [".sh", ".pl"]) && strcontains(proc.cmdline, "--daemon")
    || regex(lower(proc.comm), "^(xmrig|minerd|kworker[0-9]+)$")
    || basename(proc.exe) == "perl" && dirname(proc.exe) != "/usr/bin"
    || contains(["eggdrop", "psybnc"], proc.comm)
    || length(proc.cmdline) > 400 && min(proc.cpu_percent, 100) >= max(50, 49)
  )
  kill {}
}

rule "ternary" {
  class = "customers"
  when  = proc.cpu_percent > (host.ncpu > 8 ? 50 : 80) && !(proc.nice == 19) && -proc.nice <= 20 && proc.pid % 2 >= 0 && proc.exe != ""
  renice {
    nice = 19
  }
}
