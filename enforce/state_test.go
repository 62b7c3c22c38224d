package enforce

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// A state file is written whole in a directory made for it, replaced by
// the next save, and removed by an empty one; removing one that is not
// there is no error. The control: the bytes read back are those saved.
func TestSaveStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "x.json")
	for _, want := range []string{`[1]`, `[1,2]`} {
		if err := SaveStateFile(path, []byte(want)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != want {
			t.Fatalf("read back %q, %v; want %q", b, err, want)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, %v; want 0640", fi.Mode(), err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the temporary file is left: %v", err)
	}
	if err := SaveStateFile(path, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an empty save left the file: %v", err)
	}
	if err := SaveStateFile(path, nil); err != nil {
		t.Errorf("removing a missing state file: %v", err)
	}
}
