rule "cpu-hog" {
  class = "customers"
  when  = proc.cpu_percent > 80
  renice {
    nice = 99 # ERROR: Nice value out of range
  }
}
