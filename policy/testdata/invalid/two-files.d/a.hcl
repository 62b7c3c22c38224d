# Load on a directory reports the errors of every file together.
class "customers" {
  uids = ["1000-59999"]
}

rule "a" {
  class = "customers"
  when  = proc.cpu_percent > 80
  renice {
    nice = 40 # ERROR: Nice value out of range
  }
}
