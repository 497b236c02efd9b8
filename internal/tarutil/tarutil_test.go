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

// Links that leave the folder are followed (a virtualenv's bin/python, a
// shared data folder), as Azure's upload read through them; links that
// lead nowhere or into a loop are left out with a warning.
func TestWriteDirFollowsEscapingLinks(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "python3"), []byte("interpreter"), 0o755)
	os.MkdirAll(filepath.Join(outside, "shared", "sub"), 0o755)
	os.WriteFile(filepath.Join(outside, "shared", "sub", "data.csv"), []byte("a,b"), 0o644)
	src := filepath.Join(outside, "project")
	os.MkdirAll(filepath.Join(src, ".venv", "bin"), 0o755)
	os.WriteFile(filepath.Join(src, "ok"), []byte("x"), 0o644)
	os.Symlink(filepath.Join(outside, "python3"), filepath.Join(src, ".venv", "bin", "python"))
	os.Symlink("../shared", filepath.Join(src, "data"))
	os.Symlink("/nonexistent/thing", filepath.Join(src, "broken"))
	os.Symlink("..", filepath.Join(src, "loop"))
	var buf bytes.Buffer
	var warnings []string
	if err := WriteDirAs(&buf, src, "", func(w string) { warnings = append(warnings, w) }); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if _, err := Extract(bytes.NewReader(buf.Bytes()), dst); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{".venv/bin/python": "interpreter", "data/sub/data.csv": "a,b", "ok": "x"} {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dst, ".venv", "bin", "python")); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
		t.Errorf("followed link: %v %v", fi, err)
	}
	for _, name := range []string{"broken", "loop"} {
		if _, err := os.Lstat(filepath.Join(dst, name)); err == nil {
			t.Errorf("%s was written", name)
		}
	}
	got := strings.Join(warnings, "\n")
	if len(warnings) != 2 || !strings.Contains(got, "does not exist") || !strings.Contains(got, "a loop") {
		t.Errorf("warnings = %q", warnings)
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
