package platform

// BlockDevice is a whole block device (a disk, an md or dm device), the
// unit the kernel's IO limits apply to.
type BlockDevice struct {
	Major, Minor uint32
	Name         string // e.g. sda, dm-0
}
