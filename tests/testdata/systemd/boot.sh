#!/bin/sh
# boot.sh TMPFS STAGE UNIT CGROUP.PROCS...: boots the host's systemd in a
# container over an overlay of /, for the unit test (systemd_test.go).
# Run it under `unshare --mount --propagation private`: every mount below
# stays in that namespace and vanishes with it.
#
# The launcher first moves itself into groups of its own (created by the
# test under its own groups): systemd-nspawn --keep-unit runs the
# container in the launcher's groups, and the container's systemd then
# owns them.
set -eu
tmp=$1 stage=$2 unit=$3
shift 3
for procs in "$@"; do
	echo $$ >"$procs"
done
mount -t tmpfs -o mode=0755 gdt-systemd "$tmp"
# systemd-nspawn keeps locks and mount propagation directories in
# /run/systemd/nspawn: on a tmpfs of this namespace, not the host's /run.
mount -t tmpfs -o mode=0755 gdt-systemd-run /run
mkdir "$tmp/upper" "$tmp/work" "$tmp/root"
mount -t overlay -o "lowerdir=/,upperdir=$tmp/upper,workdir=$tmp/work" gdt-systemd "$tmp/root"
# systemd ignores systemd.unit= in a container that says it is docker.
rm -f "$tmp/root/.dockerenv"
cp -a "$stage/." "$tmp/root/"
# nspawn's own seccomp filter lacks bpf (listen blocks) and quotactl_fd
# (inodes), which the unit allows: without them here the test would
# only see nspawn's refusal, not the unit's.
exec systemd-nspawn --machine=gdt-guardd-test --directory="$tmp/root" --boot --register=no --keep-unit \
	--private-network --console=pipe --capability=all --system-call-filter="bpf quotactl_fd" \
	-- "systemd.unit=$unit"
