package platform

import (
	"slices"
	"testing"
)

func TestParseMaps(t *testing.T) {
	maps := []byte(`55d0c5a00000-55d0c5a02000 r--p 00000000 08:01 1835 /usr/bin/sleep
55d0c5a02000-55d0c5a06000 r-xp 00002000 08:01 1835 /usr/bin/sleep
55d0c6b2e000-55d0c6b4f000 rw-p 00000000 00:00 0                          [heap]
7f1c2a000000-7f1c2a001000 r-xp 00000000 00:2a 77                         /tmp/kit/burn.so
7f1c2a001000-7f1c2a002000 rw-p 00001000 00:2a 77                         /tmp/kit/burn.so
7f1c2a100000-7f1c2a128000 r--p 00000000 08:01 2211                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f1c2a300000-7f1c2a301000 r-xp 00000000 00:01 5                          /memfd:x (deleted)
7f1c2a400000-7f1c2a401000 r-xp 00000000 08:01 99                         /home/a b/lib.so
7ffd3c9e4000-7ffd3c9e6000 r-xp 00000000 00:00 0                          [vdso]
7ffd3c9e7000-7ffd3c9e8000 ---p 00000000 00:00 0
`)
	paths, deleted := ParseMaps(maps, "/usr/bin/sleep")
	want := []string{"/tmp/kit/burn.so", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/memfd:x", "/home/a b/lib.so"}
	if !slices.Equal(paths, want) {
		t.Errorf("ParseMaps paths = %q, want %q", paths, want)
	}
	if !slices.Equal(deleted, []bool{false, false, true, false}) {
		t.Errorf("ParseMaps deleted = %v", deleted)
	}
	if p, _ := ParseMaps([]byte("garbage\n\n1 2 3\n"), ""); len(p) != 0 {
		t.Errorf("ParseMaps(garbage) = %q, want none", p)
	}
}

func TestParseLoaderEnv(t *testing.T) {
	env := []byte("PATH=/usr/bin\x00LD_PRELOAD=/tmp/burn.so\x00LD_PRELOAD=\x00XLD_AUDIT=/x\x00LD_LIBRARY_PATH=/home/u/lib:/usr/lib\x00LD_AUDIT=/a.so")
	got := ParseLoaderEnv(env)
	want := []string{"LD_PRELOAD=/tmp/burn.so", "LD_LIBRARY_PATH=/home/u/lib:/usr/lib", "LD_AUDIT=/a.so"}
	if !slices.Equal(got, want) {
		t.Errorf("ParseLoaderEnv = %q, want %q", got, want)
	}
}

func FuzzParseMaps(f *testing.F) {
	f.Add([]byte("7f1c2a000000-7f1c2a001000 r-xp 00000000 00:2a 77 /tmp/kit/burn.so (deleted)\n"), []byte("LD_PRELOAD=/x\x00"))
	f.Fuzz(func(t *testing.T, maps, env []byte) {
		paths, deleted := ParseMaps(maps, "")
		if len(paths) != len(deleted) || len(paths) > MaxMappedFiles {
			t.Fatalf("%d paths, %d deleted flags", len(paths), len(deleted))
		}
		for _, p := range paths {
			if p == "" || p[0] != '/' {
				t.Fatalf("path %q", p)
			}
		}
		ParseLoaderEnv(env)
	})
}
