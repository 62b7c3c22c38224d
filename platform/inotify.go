package platform

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// inotify event masks (inotify(7)); the same numbers on every Linux
// architecture, spelled out so the parser builds everywhere.
const (
	InMovedFrom  = 0x40
	InMovedTo    = 0x80
	InCreate     = 0x100
	InDelete     = 0x200
	InDeleteSelf = 0x400
	InMoveSelf   = 0x800
	InQOverflow  = 0x4000
	InIgnored    = 0x8000
	InIsDir      = 0x40000000
)

// inotifyHeader is sizeof(struct inotify_event) without its name.
const inotifyHeader = 16

// ParseInotify walks a buffer read from an inotify descriptor: struct
// inotify_event {int wd; u32 mask; u32 cookie; u32 len; char name[len]}
// with the name NUL-padded. fn gets each event's watch, mask and name
// (without padding; valid only during the call). A record that runs past
// the buffer is an error and ends the walk.
func ParseInotify(b []byte, fn func(wd int32, mask uint32, name []byte)) error {
	for len(b) > 0 {
		if len(b) < inotifyHeader {
			return errors.New("inotify: truncated event")
		}
		wd := int32(binary.NativeEndian.Uint32(b[0:4]))
		mask := binary.NativeEndian.Uint32(b[4:8])
		n := binary.NativeEndian.Uint32(b[12:16])
		if uint64(n) > uint64(len(b)-inotifyHeader) {
			return errors.New("inotify: event name runs past the buffer")
		}
		name := b[inotifyHeader : inotifyHeader+int(n)]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		fn(wd, mask, name)
		b = b[inotifyHeader+int(n):]
	}
	return nil
}
