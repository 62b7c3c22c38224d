# Customer mail, upstream sinks, metrics.
class "customers" {
  uids = ["1000-59999"]
}

rule "cpu-hog" {
  class = "customers"
  when  = proc.cpu_percent > 80
  for   = "5m"
  renice {
    nice = 19
  }
  notify {
    template = "cpu-hog"
  }
  kill {
    after = "30m"
  }
  notify {}
}

rule "warn-only" {
  class = "customers"
  when  = user.procs > 100
  notify {
    interval     = "1h"
    min_offences = 3
  }
}

report {
  mail {
    relay        = "mail.example.jp:587"
    tls          = "require"
    username     = "guardd"
    password_file = "/etc/guardd/smtp-password"
    from         = "guardd@web17.example.jp"
    to           = "{{.User}}@example.jp"
    map          = "/etc/guardd/mail-users"
    bcc          = ["abuse@example.jp"]
    language     = "ja"
    templates    = "/etc/guardd/mail"
    interval     = "6h"
    min_offences = 2
    retry_min    = "30s"
    retry_max    = "30m"
    give_up      = "2d"
    max_attempts = 4
    timeout      = "30s"
  }
  webhook {
    url         = "https://collector.example.jp/guardd"
    secret_file = "/etc/guardd/webhook-secret"
    batch       = 200
    gzip        = false
    timeout     = "5s"
    retry_min   = "2s"
    retry_max   = "10m"
  }
  syslog {
    network  = "udp"
    address  = "127.0.0.1:514"
    facility = "local3"
    tag      = "guardd-web17"
  }
  journald {}
  metrics {
    listen = "127.0.0.1:9797"
  }
  summary {
    interval = "5m"
    top      = 5
  }
  spool {
    max_events = 5000
    max_mb     = 8
  }
}
