package platform

// Who made a name: Linux records no creator, inotify reports none, and
// fanotify's directory-entry events (FAN_CREATE, which needs
// FAN_REPORT_FID) carry a pid, not a uid, of a process that may have
// exited before the pid is read (ln(1) does at once). So guardd goes by
// what a customer cannot forge for another:
//   - in a directory only its owner (and root) can add names to, every
//     name is the owner's, whoever owns the inode it points to;
//   - elsewhere (a shared sticky /tmp) the inode's owner: nobody can make
//     a new inode owned by someone else, but anybody can make a new name
//     of another's file (link(2) on any file it may read and write, even
//     with fs.protected_hardlinks=1), so an inode with several names
//     counts once, and a new name of such an inode there is never growth
//     of the inode's owner.

// NameOwner is who is credited with a name whose inode inodeUID owns, in
// a directory dirUID owns with mode dirMode (st_mode).
func NameOwner(dirUID, dirMode, inodeUID uint32) uint32 {
	if PrivateDir(dirUID, dirMode) {
		return dirUID
	}
	return inodeUID
}

// PrivateDir reports a directory only its owner and root can add names
// to: not root's, neither group- nor world-writable (a POSIX ACL that
// lets others write shows as a group-writable mask).
func PrivateDir(uid, mode uint32) bool { return uid != 0 && mode&0o022 == 0 }
