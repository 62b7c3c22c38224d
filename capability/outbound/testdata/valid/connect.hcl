class "customers" { uids = ["1000-59999"] }
class "resellers" { uids = ["2000-2999"] }

protect { uids = ["5000"] } # the MTA's own uid: never held

connect "resellers" {
  class = "resellers"
  deny  = ["*:25"]
  allow = ["10.0.0.0/8:*", "[2001:db8::/32]:25"]
  mode  = "enforce"
}

connect "customers" {
  class = "customers"
  deny  = ["*:25", "*:465", "*:587", "[::]:6660-6669"]
  allow = ["127.0.0.1:*", "[::1]:*"]
}

rule "r" {
  class = "customers"
  when  = proc.cpu_percent > 90
  report {}
}
