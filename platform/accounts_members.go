package platform

// AccountsStamp identifies the contents of the account files Accounts last
// read: it changes when /etc/passwd or /etc/group was re-read.
type AccountsStamp struct{ passwd, group fileStamp }

// Stamp returns the current AccountsStamp.
func (a *Accounts) Stamp() AccountsStamp {
	a.mu.Lock()
	defer a.mu.Unlock()
	return AccountsStamp{a.pwStamp, a.grStamp}
}

// GroupMembers returns the uids of the accounts that Groups would put in
// the group called name: those whose primary group it is, and those it
// lists as members. Sorted is not promised; duplicates are removed.
func (a *Accounts) GroupMembers(name string) []uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[uint32]bool{}
	var out []uint32
	add := func(uid uint32) {
		if !seen[uid] {
			seen[uid] = true
			out = append(out, uid)
		}
	}
	for uid, acc := range a.byUID {
		if n, ok := a.gidName[acc.GID]; ok && n == name {
			add(uid)
		}
	}
	for _, g := range a.groups {
		if g.Name != name {
			continue
		}
		for _, m := range g.Members {
			if acc := a.byName[m]; acc != nil {
				add(acc.UID)
			}
		}
	}
	return out
}
