package enforce

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// SaveStateFile writes one of guardd's own state files under state_dir
// (a capability's pending work, which a restart resumes): atomically,
// through a temporary file renamed over path, mode 0640 in a directory
// made 0750 if missing. Empty b removes the file (nothing pending; a
// missing file is no error).
func SaveStateFile(path string, b []byte) error {
	if len(b) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	tmp := path + ".tmp"
	err := os.MkdirAll(filepath.Dir(path), 0o750)
	if err == nil {
		err = os.WriteFile(tmp, b, 0o640)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	return err
}
