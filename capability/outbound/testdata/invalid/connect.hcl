class "customers" { uids = ["1000-59999"] }

connect "a" {
  class = "customerz" # ERROR: Did you mean "customers"?
  deny = [
    "25", # ERROR: has no port
    "*:0", # ERROR: is not a port
    "*:9000-8000", # ERROR: the port range is empty
    "smtp.example.com:25", # ERROR: the address must be *
    "10.0.0.0/33:25", # ERROR: the address must be *
    "[10.0.0.1]:25", # ERROR: is not an IPv6 address or CIDR
    "[fe80::1%eth0]:25", # ERROR: is not an IPv6 address or CIDR
    "*:25",
  ]
  mode = "dry-run" # ERROR: Unknown mode
  ports = [25] # ERROR: Unsupported argument
}

connect "a" { # ERROR: Duplicate connect block
  class = "customers"
  deny  = ["*:25"]
}

connect "no-deny" { # ERROR: Missing required argument
  class = "customers"
}

connect "empty" {
  class = "customers"
  deny  = [] # ERROR: Nothing denied
}
