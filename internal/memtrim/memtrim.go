// Package memtrim gives back to the kernel the pages of the executable that
// a process touched only while starting (ReleaseExecutablePages), and those
// of every read-only mapped file once a replica is idle (ReleaseFilePages).
//
// modelship is one binary: the model server and the control plane link the
// Kubernetes client, the image builder and the rest. Go runs every linked
// package's initialization at start, and each first touch of the binary's
// code and read-only data maps a window of pages around it (the kernel's
// fault-around), so a process that will never use the Kubernetes client
// still starts with tens of MB of the executable resident.
//
// ReleaseExecutablePages drops those pages from the process's page tables
// with madvise(MADV_DONTNEED). That is safe only for pages identical to the
// file: on a private file mapping MADV_DONTNEED discards private copies, so
// it is applied only to read-only mappings of the executable without any
// anonymous (copied-on-write, e.g. relocated) page. The pages stay in the
// page cache, shared with the other processes running the binary; what this
// process really uses faults back in (a minor fault) on first use.
// (MADV_PAGEOUT would not do: the kernel skips pages other processes map,
// and the server and its replicas all map the same binary.)
package memtrim

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mapping is one line of /proc/self/smaps with the fields used here.
type mapping struct {
	start, end uintptr
	perms      string
	path       string
	anonKB     int
}

// ReleaseExecutablePages drops the resident pages of the process's
// read-only, unmodified mappings of its own executable. It returns how many
// bytes of address space it released.
func ReleaseExecutablePages() (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return release(func(path string) bool { return path == exe })
}

// ReleaseFilePages does what ReleaseExecutablePages does for every file
// the process maps read-only: the executable and the shared libraries
// (ONNX Runtime's code, for one, of which an inference uses a small part).
func ReleaseFilePages() (int64, error) {
	return release(func(path string) bool { return strings.HasPrefix(path, "/") })
}

// release drops the resident pages of the read-only mappings, without
// copied-on-write pages, of the files for which match is true.
func release(match func(path string) bool) (int64, error) {
	maps, err := readSmaps()
	if err != nil {
		return 0, err
	}
	var released int64
	for _, m := range maps {
		if !match(m.path) || strings.Contains(m.perms, "w") || m.anonKB != 0 || m.end <= m.start {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno != 0 {
			err := error(errno)
			return released, fmt.Errorf("madvise %x-%x: %w", m.start, m.end, err)
		}
		released += int64(m.end - m.start)
	}
	return released, nil
}

// readSmaps parses /proc/self/smaps.
func readSmaps() ([]mapping, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(fields[0], "-"); ok && len(fields) >= 5 && !strings.HasSuffix(fields[0], ":") {
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil {
				continue
			}
			m := mapping{start: uintptr(start), end: uintptr(end), perms: fields[1]}
			if len(fields) >= 6 {
				m.path = fields[5]
			}
			out = append(out, m)
			continue
		}
		if fields[0] == "Anonymous:" && len(out) > 0 && len(fields) >= 2 {
			out[len(out)-1].anonKB, _ = strconv.Atoi(fields[1])
		}
	}
	return out, sc.Err()
}
