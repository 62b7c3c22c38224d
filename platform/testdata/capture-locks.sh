#!/bin/bash
# Re-captures the real /proc/locks, /proc/PID/syscall and mountinfo
# fixtures under testdata/ (run as root from platform/: bash
# testdata/capture-locks.sh). Lock holders and waiters are guardd's own test
# offender (tests/offender), run as root here. The expectations in
# locks_test.go must be updated after a re-capture: pids, inodes and
# devices change.
set -euo pipefail
out=testdata
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
go build -o "$tmp/offender" ../tests/offender

start() { "$tmp/offender" "$@" > /dev/null & pids+=($!); sleep 0.3; }

# flock: a holder and a waiter.
start lock-hold -kind flock "$tmp/f"
start lock-wait -kind flock "$tmp/f"
flockwaiter=${pids[-1]}
# POSIX: a holder, a POSIX waiter, and two OFD requests queued behind it
# (nested "->" lines, pid -1).
start lock-hold -kind posix "$tmp/p"
start lock-wait -kind posix "$tmp/p"
posixwaiter=${pids[-1]}
start lock-wait -kind ofd "$tmp/p"
start lock-wait -kind ofd "$tmp/p"
# OFD: a holder (pid -1) and a waiter.
start lock-hold -kind ofd "$tmp/o"
start lock-wait -kind ofd "$tmp/o"
cp /proc/locks $out/locks/mixed
cp /proc/$flockwaiter/syscall $out/syscall/flock-wait
cp /proc/$posixwaiter/syscall $out/syscall/fcntl-wait
cp /proc/self/syscall $out/syscall/running
cp /proc/self/mountinfo $out/mountinfo/self
