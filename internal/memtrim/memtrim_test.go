package memtrim

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// exeRSS sums the resident KB of the process's read-only mappings of its
// executable.
func exeRSS(t *testing.T) int {
	t.Helper()
	exe, _ := os.Executable()
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && strings.Contains(fields[0], "-") && len(fields) >= 5 {
			in = len(fields) >= 6 && fields[5] == exe && !strings.Contains(fields[1], "w")
			continue
		}
		if in && len(fields) >= 2 && fields[0] == "Rss:" {
			n, _ := strconv.Atoi(fields[1])
			total += n
		}
	}
	return total
}

func TestReleaseExecutablePages(t *testing.T) {
	before := exeRSS(t)
	n, err := ReleaseExecutablePages()
	if errors.Is(err, unix.EINVAL) {
		t.Skipf("kernel without MADV_PAGEOUT: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	after := exeRSS(t)
	t.Logf("released %d MB; executable resident %d KB -> %d KB", n>>20, before, after)
	if n == 0 || before == 0 {
		t.Fatalf("nothing advised (%d bytes) or nothing resident (%d KB)", n, before)
	}
	if after >= before {
		t.Errorf("resident pages of the executable did not go down: %d KB -> %d KB", before, after)
	}
}
