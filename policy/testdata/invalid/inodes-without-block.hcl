class "customers" {
  uids = ["1000-59999"]
}

rule "tmp" {
  class = "customers"
  when  = user.inodes > 100000 # ERROR: No inodes block
  report {}
}
