class "customers" {
  uids = ["1000-59999"]
}

rule "unclosed" { # ERROR: Unclosed configuration block
  class = "customers"
  when  = proc.cpu_percent > 80
  kill {}
