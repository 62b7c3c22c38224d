#!/bin/bash
# Re-captures the real /proc and /sys fixtures under testdata/ on a Linux host
# (run as root from the platform/ directory: bash testdata/capture.sh).
# Hostile command names are real: the kernel sets comm from the basename of
# the executed file, so a symlink to sleep(1) with a hostile name produces a
# real /proc/PID/stat with that comm. Expected values in the tests must be
# updated after a re-capture.
set -euo pipefail
out=testdata
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
mkdir -p $out/stat $out/status $out/cmdline $out/host $out/accounts

# wait_exec PID: wait until PID has exec'd (its exe is no longer bash).
wait_exec() { for _ in $(seq 100); do [[ $(readlink /proc/$1/exe) != */bash ]] && return; sleep 0.01; done; }

cp /proc/self/stat $out/stat/self
cp /proc/2/stat $out/stat/kthreadd
for p in /proc/[0-9]*; do # a workqueue worker: long comm, negative nice
	c=$(cat $p/comm 2>/dev/null || true)
	if [[ $c == kworker/R-* ]]; then cp $p/stat $out/stat/kworker-nice-neg; break; fi
done
for p in /proc/[0-9]*; do # a real-time kernel thread (priority -100)
	if [[ $(cat $p/comm 2>/dev/null || true) == migration/0 ]]; then cp $p/stat $out/stat/migration-rt; fi
done

capture() { # capture NAME COMM: stat of sleep(1) running under comm COMM
	ln -s /bin/sleep "$tmp/$2"
	"$tmp/$2" 60 & local pid=$!; pids+=($pid)
	wait_exec $pid
	cp /proc/$pid/stat "$out/stat/$1"
}
capture paren-inside 'a) b (c'
capture paren-pair ') ('
capture lone-close ')'
capture opens '(('
capture spaces 'x y z'
capture newline $'nl\nx'
capture invalid-utf8 $'bad\xff\xfeu'
capture fake-fields 'x) S 1 2 3'

nice -n -5 sleep 60 & pids+=($!); wait_exec $!; cp /proc/$!/stat $out/stat/niced-neg
# Non-zero utime and stime: the shell burns CPU (user and kernel), then becomes sleep.
bash -c 'for ((i=0;i<100000;i++)); do : >/dev/null; done; exec sleep 60' & pids+=($!); wait_exec $!; cp /proc/$!/stat $out/stat/busy
sleep 60 & pids+=($!); wait_exec $!; kill -STOP $!; sleep 0.1; cp /proc/$!/stat $out/stat/stopped
# A zombie: the shell's child exits after the shell exec'd sleep, which never reaps.
bash -c 'sleep 0.3 & exec sleep 60' & sh=$!; pids+=($sh); wait_exec $sh
z=
for _ in $(seq 200); do z=$(pgrep -P $sh || true); [[ -n $z && $(cut -d' ' -f3 /proc/$z/stat) == Z ]] && break; z=; sleep 0.01; done
[[ -n $z ]] || { echo "no zombie found" >&2; exit 1; }
cp /proc/$z/stat $out/stat/zombie; cp /proc/$z/status $out/status/zombie

# A name that tries to smuggle a Uid: line into status; run as uid 1000.
chmod 755 "$tmp"
ln -s /bin/sleep "$tmp/"$'\nUid:\t0\t0\t0\t0'
setpriv --reuid 1000 --regid 1000 --clear-groups "$tmp/"$'\nUid:\t0\t0\t0\t0' 60 & pids+=($!); wait_exec $!
cp /proc/$!/status $out/status/name-spoofs-uid; cp /proc/$!/stat $out/stat/name-spoofs-uid

cp /proc/self/status $out/status/self-root
# Real uid 65534, effective uid 0: what a setuid-root program run by a user shows.
setpriv --ruid 65534 --rgid 65534 --euid 0 --egid 0 --clear-groups cat /proc/self/status > $out/status/ruid-euid-differ
setpriv --reuid 1000 --regid 1000 --clear-groups cat /proc/self/status > $out/status/user-1000

cat /proc/self/cmdline > $out/cmdline/self-cat
bash -c 'exec -a "argv0 with spaces" sleep 60' & pids+=($!); wait_exec $!; cp /proc/$!/cmdline $out/cmdline/argv0-spaces
sh -c 'sleep 60; :' argv0 $'tab\there' $'nl\nhere' "" "last" & pids+=($!); wait_exec $!; cp /proc/$!/cmdline $out/cmdline/control-chars

cp /proc/loadavg $out/host/loadavg
cp /proc/sys/fs/file-nr $out/host/file-nr
cp /sys/devices/system/cpu/online $out/host/cpu-online
cp /sys/devices/system/cpu/possible $out/host/cpu-possible
cp /etc/passwd $out/accounts/passwd-debian
cp /etc/group $out/accounts/group-debian
