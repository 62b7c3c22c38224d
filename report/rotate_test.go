package report

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAuditTailFollowsManyRotations: with the writer in the same process
// (as in guardd), the tail forwards every line exactly once and in order
// while the log is rotated hundreds of times, several times between two
// polls, by rename alone and by rename plus Reopen (SIGUSR1), with lines
// being written all the while. The control, a tail that does not know the
// writer, loses the files it never saw.
func TestAuditTailFollowsManyRotations(t *testing.T) {
	for _, withWriter := range []bool{true, false} {
		t.Run(fmt.Sprintf("writer known %v", withWriter), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "audit.jsonl")
			a, err := OpenAuditLog(path)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			sp := openTestSpool(t, filepath.Join(dir, "spool.db"), SpoolLimits{})
			defer sp.Close()
			tail := NewAuditTail(path, "h", sp)
			defer tail.Close()
			if withWriter {
				tail.Log = func() *AuditLog { return a }
			}
			qs := []string{"q"}
			if _, err := tail.Poll(qs); err != nil {
				t.Fatal(err)
			}
			const lines = 3000
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 1; n <= lines; n++ {
					if err := a.Write(&Event{Time: time.Unix(int64(n), 0), Rule: fmt.Sprint("r", n), Outcome: OutcomeDone}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
			for i := 1; i <= 300; i++ {
				if err := os.Rename(path, fmt.Sprintf("%s.%d", path, i)); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				if i%2 == 0 {
					if err := a.Reopen(); err != nil {
						t.Fatal(err)
					}
				}
				if i%3 == 0 { // three rotations between two polls
					if _, err := tail.Poll(qs); err != nil {
						t.Fatal(err)
					}
				}
			}
			wg.Wait()
			for range 3 {
				if _, err := tail.Poll(qs); err != nil {
					t.Fatal(err)
				}
			}
			got := strings.Split(rules(t, envelopes(t, sp, "q")), ",")
			seen := map[string]int{}
			for _, r := range got {
				seen[r]++
			}
			missing, dup := 0, 0
			for n := 1; n <= lines; n++ {
				switch c := seen[fmt.Sprint("r", n)]; {
				case c == 0:
					missing++
				case c > 1:
					dup++
				}
			}
			if dup > 0 {
				t.Errorf("%d lines forwarded more than once", dup)
			}
			if withWriter {
				if missing > 0 {
					t.Errorf("%d of %d lines not forwarded", missing, lines)
				}
				for i := 1; i < len(got); i++ {
					var a, b int
					fmt.Sscanf(got[i-1], "r%d", &a)
					fmt.Sscanf(got[i], "r%d", &b)
					if b <= a {
						t.Fatalf("out of order: %s after %s", got[i], got[i-1])
					}
				}
			} else if missing == 0 {
				t.Log("control: the tail without the writer lost nothing this time (the rotations fell between writes)")
			} else {
				t.Logf("control: without the writer, %d of %d lines were not forwarded", missing, lines)
			}
		})
	}
}
