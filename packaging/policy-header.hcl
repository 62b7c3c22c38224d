# This policy starts in MONITOR mode: every rule decides and writes what it
# would do to the audit log (/var/log/guardd/audit.jsonl, outcome
# "would-do") and acts on nothing; the limits block below (at most 400
# processes per customer, a kernel limit) is not applied either until
# enforcement is on.
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
