class "customers" {
  uids = ["1000-59999"]
}

rule "r" {
  class = "customers"
  when  = proc.cpu_percent > 80
  kill {}
  renice { # ERROR: kill ends the process, so it must be the last step
    nice = 19
  }
}

rule "late-notify" {
  class = "customers"
  when  = proc.cpu_percent > 80
  kill {}
  notify { # ERROR: After kill the process is gone
    after = "1m"
  }
}

rule "bad-notify" {
  class = "customers"
  when  = proc.cpu_percent > 80
  notify {
    template     = "../etc/passwd" # ERROR: Bad template name
    interval     = "0s" # ERROR: interval must be between
    min_offences = 0 # ERROR: min_offences must be a whole number from 1
  }
}

report {
  mail {
    relay     = "localhost" # ERROR: Expected host:port
    sendmail  = "/usr/sbin/sendmail" # ERROR: relay and sendmail both set
    tls       = "maybe" # ERROR: Unknown tls mode
    from      = "guardd <guardd@example.jp>" # ERROR: Bad from address
    to        = "{{.Usr}}@example.jp" # ERROR: Bad recipient template
    bcc       = ["not an address"] # ERROR: Bad bcc address
    language  = "fr" # ERROR: Unknown language
    templates = "mail" # ERROR: Path must be absolute
    retry_min = "1h"
    retry_max = "1m" # ERROR: retry_max below retry_min
    username  = "guardd" # ERROR: SMTP AUTH needs both username and password_file
  }
  webhook {
    url         = "ftp://example.jp/" # ERROR: Bad webhook URL
    secret      = "s" # ERROR: secret and secret_file both set
    secret_file = "/etc/guardd/secret"
    batch       = 0 # ERROR: batch must be a whole number from 1
    gzip        = "yes" # ERROR: Expected true or false
  }
  syslog { # ERROR: Give the tcp syslog server's address
    network  = "tcp"
    facility = "local9" # ERROR: Unknown syslog facility
    tag      = "two words" # ERROR: Bad syslog tag
  }
  metrics {
    listen = 9797 # ERROR: Expected a string
  }
  summary {
    top = 1000 # ERROR: top must be a whole number from 1 to 100
  }
  spool {
    max_events = 1 # ERROR: max_events must be a whole number from 100
  }
  mail { # ERROR: report has one mail block
    to = "{{.User}}@example.jp"
  }
  ftp {} # ERROR: Unsupported block type
}

report { # ERROR: The report block is already defined at
}
