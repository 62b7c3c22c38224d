# This policy starts in MONITOR mode: every rule decides and writes what it
# would do to the audit log (/var/log/guardd/audit.jsonl, outcome
# "would-do") and acts on nothing. Only the limits block below, a kernel
# limit rather than a rule, applies already: each customer may run at most
# 400 processes (remove the block if guardd is to change nothing at first).
#
# To turn enforcement on, once the audit log shows only what you want done,
# set  mode = "enforce"  in the guardd block below, then check and reload:
#
#   guardd check /etc/guardd/policy.hcl && systemctl reload guardd
#
# Rules that say mode = "monitor" themselves (temp-exe, listen "customers")
# stay in monitor mode until you change them too. The package keeps your
# edits on upgrade (this file is a conffile). Reference: guardd.hcl(5).
#
