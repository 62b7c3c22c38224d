# Rules about whole accounts: they read only user.* and host.* variables,
# so they act once per user, not per process.
class "customers" {
  uids = ["1000-59999"]
}

rule "fork-storm" {
  class = "customers"
  when  = user.procs > 300 || user.zombies > 50
  stop {}
}

rule "greedy-account" {
  class    = "customers"
  when     = host.load1 > host.ncpu * 2 && user.cpu_percent / host.ncpu > 50
  for      = "2m"
  cooldown = "30m"
  report {}
}

rule "fd-hoarder" {
  class = "customers"
  when  = host.files_open_percent > 80 && user.fds > 10000 && user.name != "www-data"
  report {}
}
