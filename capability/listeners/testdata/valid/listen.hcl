# Listeners: customers may not listen except where allowed; resellers (in
# both classes) may also run their shop backend on 8080.
guardd {
  mode        = "monitor"
  bpf_pin_dir = "/sys/fs/bpf/guardd"
}

class "customers" { uids = ["1000-59999"] }
class "resellers" { users = ["shop1"] }

listen "customers" {
  class = "customers"
  allow = ["127.0.0.1:11211", "*:60000-60099", "[::1]:6379", "[::ffff:10.0.0.1]:9000"]
  block = "bind"
  mode  = "enforce"
}

listen "resellers" {
  class = "resellers"
  allow = ["*:8080"]
  block = "kill"
}

listen "closed" {
  class = "customers"
}

rule "many-listeners" {
  class = "customers"
  when  = user.listeners > 5
  report {}
}

rule "irc-bot" {
  class = "customers"
  when  = contains(proc.listen_ports, 6667) || length(proc.listen_ports) > 3 || contains([6660, 6697], 6697)
  kill {}
}
