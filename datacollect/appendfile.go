package datacollect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// AppendFile is a file of whole lines that one or more processes append to
// (every replica of a service writes the same data.csv). Each append takes
// an exclusive flock, writes at the current end of the file and, when the
// write fails part way (disk full), truncates back, so readers never see a
// torn line. Opening repairs a partial last line left by a process killed
// in the middle of a write.
type AppendFile struct {
	f    *os.File
	path string
}

// OpenAppend opens (creating it and its directories) the file at path,
// truncates a partial last line, and writes header when the file is empty.
// It returns the file and its first line (the existing header, or header),
// without the newline.
func OpenAppend(path string, header []byte) (*AppendFile, []byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, fmt.Errorf("creating directory of %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", path, err)
	}
	af := &AppendFile{f: f, path: path}
	first, err := af.prepare(header)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return af, first, nil
}

// prepare repairs the file and writes the header, under the lock.
func (a *AppendFile) prepare(header []byte) ([]byte, error) {
	if err := a.lock(); err != nil {
		return nil, err
	}
	defer a.unlock()
	size, err := a.size()
	if err != nil {
		return nil, err
	}
	end, err := lastLineEnd(a.f, size)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", a.path, err)
	}
	if end != size {
		if err := a.f.Truncate(end); err != nil {
			return nil, fmt.Errorf("truncating the partial last line of %s: %w", a.path, err)
		}
		size = end
	}
	if size == 0 {
		if len(header) == 0 {
			return nil, nil
		}
		line := append(bytes.TrimRight(header, "\n"), '\n')
		if err := a.writeAt(line, 0); err != nil {
			return nil, err
		}
		return line[:len(line)-1], nil
	}
	first := make([]byte, min(size, 64<<10))
	n, err := a.f.ReadAt(first, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading %s: %w", a.path, err)
	}
	first = first[:n]
	if i := bytes.IndexByte(first, '\n'); i >= 0 {
		first = first[:i]
	}
	return first, nil
}

// lastLineEnd returns the offset just past the last '\n' of the first
// size bytes of f (0 when there is none).
func lastLineEnd(f *os.File, size int64) (int64, error) {
	if size == 0 {
		return 0, nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], size-1); err != nil {
		return 0, err
	}
	if last[0] == '\n' {
		return size, nil
	}
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		chunk := buf[:end-start]
		if _, err := f.ReadAt(chunk, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// Append writes b, which must hold whole lines, at the end of the file.
// On failure the file is cut back to its previous size.
func (a *AppendFile) Append(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if err := a.lock(); err != nil {
		return err
	}
	defer a.unlock()
	size, err := a.size()
	if err != nil {
		return err
	}
	return a.writeAt(b, size)
}

// writeAt writes b at off and truncates back to off on failure.
func (a *AppendFile) writeAt(b []byte, off int64) error {
	if _, err := a.f.WriteAt(b, off); err != nil {
		_ = a.f.Truncate(off)
		return fmt.Errorf("writing %s: %w", a.path, err)
	}
	return nil
}

// Size returns the file's current size.
func (a *AppendFile) Size() (int64, error) { return a.size() }

// Sync flushes the file to stable storage.
func (a *AppendFile) Sync() error {
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", a.path, err)
	}
	return nil
}

// Close closes the file.
func (a *AppendFile) Close() error { return a.f.Close() }

// Path returns the file's path.
func (a *AppendFile) Path() string { return a.path }

func (a *AppendFile) size() (int64, error) {
	st, err := a.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", a.path, err)
	}
	return st.Size(), nil
}

func (a *AppendFile) lock() error {
	for {
		err := syscall.Flock(int(a.f.Fd()), syscall.LOCK_EX)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("locking %s: %w", a.path, err)
		}
	}
}

func (a *AppendFile) unlock() { _ = syscall.Flock(int(a.f.Fd()), syscall.LOCK_UN) }
