package tarutil

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteDirIsDeterministicAndExtracts(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(src, "a", "b", "w.bin"), []byte("weights"), 0o644)
	os.WriteFile(filepath.Join(src, "top.txt"), []byte("top"), 0o600)
	os.Symlink("a/b/w.bin", filepath.Join(src, "link"))
	var one, two bytes.Buffer
	if err := WriteDir(&one, src); err != nil {
		t.Fatal(err)
	}
	// Touch times: the stream must not change.
	now := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(src, "top.txt"), now, now)
	if err := WriteDir(&two, src); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(one.Bytes()) != sha256.Sum256(two.Bytes()) {
		t.Fatal("the same folder gave two different tar streams")
	}
	dst := t.TempDir()
	n, err := Extract(bytes.NewReader(one.Bytes()), dst)
	if err != nil || n != 2 {
		t.Fatalf("extracted %d files: %v", n, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "link")); string(b) != "weights" {
		t.Fatalf("link resolves to %q", b)
	}
}

func TestWriteDirRefusesEscapingLink(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "ok"), []byte("x"), 0o644)
	os.Symlink("../../etc/passwd", filepath.Join(src, "bad"))
	var buf bytes.Buffer
	if err := WriteDir(&buf, src); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("err = %v", err)
	}
}

func TestExtractRejects(t *testing.T) {
	tests := []struct {
		name string
		hdr  tar.Header
		want string
	}{
		{"DotDot", tar.Header{Name: "../x", Typeflag: tar.TypeReg}, "escapes"},
		{"Absolute", tar.Header{Name: "/tmp/x", Typeflag: tar.TypeReg}, "absolute"},
		{"Backslash", tar.Header{Name: `a\..\x`, Typeflag: tar.TypeReg}, "invalid"},
		{"SymlinkOut", tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "../../x"}, "outside"},
		{"SymlinkAbs", tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, "outside"},
		{"HardlinkOut", tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "../x"}, "outside"},
		{"Fifo", tar.Header{Name: "f", Typeflag: tar.TypeFifo}, "unsupported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			h := tt.hdr
			h.Mode = 0o644
			tw.WriteHeader(&h)
			tw.Close()
			dst := t.TempDir()
			_, err := Extract(&buf, dst)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dst), "x")); err == nil {
				t.Fatal("a file was written outside the target")
			}
		})
	}
}
