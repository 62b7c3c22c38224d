guardd {
  bpf_pin_dir = "sys/fs/bpf" # ERROR: Path must be absolute
}

class "customers" { uids = ["1000-59999"] }

listen "a" {
  class = "customerz" # ERROR: Did you mean "customers"?
  allow = [
    "8080", # ERROR: has no port
    "*:0", # ERROR: is not a port
    "*:70000", # ERROR: is not a port
    "*:9000-8000", # ERROR: the port range is empty
    "localhost:80", # ERROR: the address must be *
    "[127.0.0.1]:80", # ERROR: is not an IPv6 address
    "[fe80::1%eth0]:80", # ERROR: zones
    "::1:80", # ERROR: the address must be *
    "", # ERROR: Empty string
    "*:8080",
  ]
  block = "firewall" # ERROR: Unknown block
  mode  = "dry-run" # ERROR: Unknown mode
  ports = [80] # ERROR: Unsupported argument
}

listen "a" { # ERROR: Duplicate listen block
  class = "customers"
}

listen "no-class" { # ERROR: Missing required argument
  allow = "*:80" # ERROR: Expected a list of strings
}

rule "r" {
  class = "customers"
  when  = contains(proc.listen_ports, "8080") || proc.listen_ports == [80] # ERROR: contains() of a list of numbers
  kill {}
}

rule "s" {
  class = "customers"
  when  = contains([80, "443"], 80) # ERROR: A list of numbers
  kill {}
}

rule "t" {
  class = "customers"
  when  = user.listeners > "5" # ERROR: Wrong type
  kill {}
}
