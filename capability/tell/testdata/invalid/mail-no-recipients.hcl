class "customers" {
  uids = ["1000-59999"]
}

rule "r" {
  class = "customers"
  when  = proc.cpu_percent > 80
  notify {}
}

report {
  mail { # ERROR: Mail has no recipients
    from = "guardd@example.jp"
  }
}
