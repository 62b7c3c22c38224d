class "customers" {
  uids = ["1000-59999"]
}

rule "r" {
  class = "customers"
  when  = proc.cpu_percent > 80
  notify {} # ERROR: Customer mail needs a mail block inside a report block
}

report {
  metrics {}
}
