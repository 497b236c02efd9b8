// Package memtrim gives back to the kernel the pages of the executable that
// a process touched only while starting.
//
// modelship is one binary: the model server and the control plane link the
// Kubernetes client, the image builder and the rest. Go runs every linked
// package's initialization at start, and each first touch of the binary's
// code and read-only data maps a window of pages around it (the kernel's
// fault-around), so a process that will never use the Kubernetes client
// still starts with tens of MB of the executable resident. Those pages are
// clean and file-backed: ReleaseExecutablePages asks the kernel to reclaim
// them (madvise MADV_PAGEOUT, a hint that never changes memory contents);
// what the process really uses faults back in on first use.
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

// ReleaseExecutablePages advises the kernel to reclaim the resident pages
// of the process's own executable mappings that are not writable. It
// returns how many bytes of address space it advised. On kernels without
// MADV_PAGEOUT (before Linux 5.4) it does nothing and returns the error.
func ReleaseExecutablePages() (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var advised int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode pathname
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if err := madvise(uintptr(start), uintptr(end-start)); err != nil {
			return advised, fmt.Errorf("madvise %s: %w", fields[0], err)
		}
		advised += int64(end - start)
	}
	return advised, sc.Err()
}

func madvise(addr, length uintptr) error {
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, length, unix.MADV_PAGEOUT)
	if errno != 0 {
		return errno
	}
	return nil
}
