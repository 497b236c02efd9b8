package registry_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/artifact"
	"github.com/modelship/modelship/registry"
	"github.com/modelship/modelship/sqlite"
)

func newService(t *testing.T) (*registry.Service, *artifact.Local) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	art, err := artifact.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return registry.New(db, art, nil), art
}

type entry struct {
	name, body, link string
	typ              byte
}

func makeTar(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func TestRegisterFileAndFolder(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	body := []byte("onnx bytes")
	mv, err := svc.RegisterModel(ctx, &modelship.RegisterRequest{Workspace: "default", Name: "diabetes", AssetType: modelship.AssetFile,
		FileName: "model.onnx", ModelFramework: "onnx", Tags: map[string]string{"team": "risk"}, Content: bytes.NewReader(body), ExpectedSHA256: sum(body)})
	if err != nil {
		t.Fatal(err)
	}
	if mv.Version != 1 || mv.SHA256 != sum(body) || mv.SizeBytes != int64(len(body)) || mv.ModelFramework != "Onnx" || mv.FileCount != 1 {
		t.Fatalf("file model = %+v", mv)
	}
	tb := makeTar(t, entry{name: "sub/", typ: tar.TypeDir}, entry{name: "sub/a.pkl", body: "aaa"}, entry{name: "b.txt", body: "bb"}, entry{name: "sub/link", typ: tar.TypeSymlink, link: "a.pkl"})
	mv2, err := svc.RegisterModel(ctx, &modelship.RegisterRequest{Workspace: "default", Name: "diabetes", AssetType: modelship.AssetFolder, Content: bytes.NewReader(tb)})
	if err != nil {
		t.Fatal(err)
	}
	if mv2.Version != 2 || mv2.SizeBytes != 5 || mv2.FileCount != 2 || mv2.SHA256 != sum(tb) {
		t.Fatalf("folder model = %+v", mv2)
	}
	_, rc, err := svc.OpenModelContent(ctx, "default", modelship.ModelRef{Name: "diabetes", Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, tb) {
		t.Fatal("downloaded folder differs from the upload")
	}
}

func TestRegisterRejectsAndStoresNothing(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		req     modelship.RegisterRequest
		content []byte
		reader  io.Reader
		code    string
		msg     string
	}{
		{name: "BadName", req: modelship.RegisterRequest{Name: "bad name", AssetType: "file", FileName: "m"}, content: []byte("x"), code: modelship.EINVALID, msg: "model name"},
		{name: "EmptyFile", req: modelship.RegisterRequest{Name: "m", AssetType: "file", FileName: "m.onnx"}, content: nil, code: modelship.EINVALID, msg: "is empty"},
		{name: "DigestMismatch", req: modelship.RegisterRequest{Name: "m", AssetType: "file", FileName: "m.onnx", ExpectedSHA256: strings.Repeat("0", 64)}, content: []byte("x"), code: modelship.EINVALID, msg: "sha256 mismatch"},
		{name: "DotDot", req: modelship.RegisterRequest{Name: "m", AssetType: "folder"}, content: makeTar(t, entry{name: "../evil", body: "x"}), code: modelship.EINVALID, msg: "escapes"},
		{name: "Absolute", req: modelship.RegisterRequest{Name: "m", AssetType: "folder"}, content: makeTar(t, entry{name: "/etc/passwd", body: "x"}), code: modelship.EINVALID, msg: "absolute"},
		{name: "SymlinkEscape", req: modelship.RegisterRequest{Name: "m", AssetType: "folder"}, content: makeTar(t, entry{name: "ok", body: "x"}, entry{name: "l", typ: tar.TypeSymlink, link: "../../etc/passwd"}), code: modelship.EINVALID, msg: "outside"},
		{name: "SymlinkAbsolute", req: modelship.RegisterRequest{Name: "m", AssetType: "folder"}, content: makeTar(t, entry{name: "ok", body: "x"}, entry{name: "l", typ: tar.TypeSymlink, link: "/etc/passwd"}), code: modelship.EINVALID, msg: "outside"},
		{name: "HardlinkEscape", req: modelship.RegisterRequest{Name: "m", AssetType: "folder"}, content: makeTar(t, entry{name: "ok", body: "x"}, entry{name: "l", typ: tar.TypeLink, link: "../x"}), code: modelship.EINVALID, msg: "outside"},
		{name: "Device", req: modelship.RegisterRequest{Name: "m", AssetType: "folder"}, content: makeTar(t, entry{name: "ok", body: "x"}, entry{name: "dev", typ: tar.TypeChar}), code: modelship.EINVALID, msg: "unsupported type"},
		{name: "EmptyFolder", req: modelship.RegisterRequest{Name: "m", AssetType: "folder"}, content: makeTar(t, entry{name: "d/", typ: tar.TypeDir}), code: modelship.EINVALID, msg: "no files"},
		{name: "TruncatedTar", req: modelship.RegisterRequest{Name: "m", AssetType: "folder"}, content: makeTar(t, entry{name: "big", body: strings.Repeat("x", 5000)})[:1500], code: modelship.EINVALID, msg: "ended inside"},
		{name: "NotATar", req: modelship.RegisterRequest{Name: "m", AssetType: "folder"}, content: []byte(strings.Repeat("garbage!", 200)), code: modelship.EINVALID, msg: "tar"},
		{name: "CutOffUpload", req: modelship.RegisterRequest{Name: "m", AssetType: "file", FileName: "m.onnx"}, reader: io.MultiReader(strings.NewReader("partial"), errReader{io.ErrUnexpectedEOF}), code: modelship.EINVALID, msg: "nothing was stored"},
		{name: "UnknownWorkspace", req: modelship.RegisterRequest{Workspace: "ghost", Name: "m", AssetType: "file", FileName: "m"}, content: []byte("x"), code: modelship.ENOTFOUND, msg: "ghost"},
		{name: "BadFramework", req: modelship.RegisterRequest{Name: "m", AssetType: "file", FileName: "m", ModelFramework: "Caffe9"}, content: []byte("x"), code: modelship.EINVALID, msg: "Onnx"},
		{name: "FileNameWithSlash", req: modelship.RegisterRequest{Name: "m", AssetType: "file", FileName: "a/b"}, content: []byte("x"), code: modelship.EINVALID, msg: "file name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, art := newService(t)
			req := tt.req
			if req.Workspace == "" {
				req.Workspace = "default"
			}
			req.Content = tt.reader
			if req.Content == nil {
				req.Content = bytes.NewReader(tt.content)
			}
			_, err := svc.RegisterModel(ctx, &req)
			if modelship.ErrorCode(err) != tt.code || !strings.Contains(modelship.ErrorMessage(err), tt.msg) {
				t.Fatalf("err = %v; want code %s and message containing %q", err, tt.code, tt.msg)
			}
			list, _ := svc.ListModels(ctx, "default", modelship.ModelFilter{})
			blobs, _ := art.List(ctx)
			if len(list) != 0 || len(blobs) != 0 {
				t.Fatalf("rejected upload left %d versions and %d blobs", len(list), len(blobs))
			}
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestDeleteRemovesBytesWhenUnused(t *testing.T) {
	ctx := context.Background()
	svc, art := newService(t)
	reg := func(body string) *modelship.ModelVersion {
		mv, err := svc.RegisterModel(ctx, &modelship.RegisterRequest{Workspace: "default", Name: "m", AssetType: "file", FileName: "m", Content: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		return mv
	}
	reg("same")
	reg("same")
	if err := svc.DeleteModel(ctx, "default", modelship.ModelRef{Name: "m"}); modelship.ErrorCode(err) != modelship.EINVALID {
		t.Fatalf("delete without version: %v", err)
	}
	if err := svc.DeleteModel(ctx, "default", modelship.ModelRef{Name: "m", Version: 1}); err != nil {
		t.Fatal(err)
	}
	if blobs, _ := art.List(ctx); len(blobs) != 1 {
		t.Fatalf("shared blob deleted while m:2 uses it (%d blobs)", len(blobs))
	}
	if err := svc.DeleteModel(ctx, "default", modelship.ModelRef{Name: "m", Version: 2}); err != nil {
		t.Fatal(err)
	}
	if blobs, _ := art.List(ctx); len(blobs) != 0 {
		t.Fatalf("%d blobs left after the last version went", len(blobs))
	}
}

func TestDeleteRefusedWhileInUse(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	svc.InUse = func(ctx context.Context, ws string, mv *modelship.ModelVersion) (string, error) {
		return `service "mysvc"`, nil
	}
	if _, err := svc.RegisterModel(ctx, &modelship.RegisterRequest{Workspace: "default", Name: "m", AssetType: "file", FileName: "m", Content: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	err := svc.DeleteModel(ctx, "default", modelship.ModelRef{Name: "m", Version: 1})
	if modelship.ErrorCode(err) != modelship.ECONFLICT || !strings.Contains(err.Error(), "mysvc") {
		t.Fatalf("err = %v", err)
	}
}

func TestCollectGarbage(t *testing.T) {
	ctx := context.Background()
	svc, art := newService(t)
	if _, err := svc.RegisterModel(ctx, &modelship.RegisterRequest{Workspace: "default", Name: "m", AssetType: "file", FileName: "m", Content: strings.NewReader("keep")}); err != nil {
		t.Fatal(err)
	}
	p, err := art.Put(ctx, strings.NewReader("orphan"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	n, err := svc.CollectGarbage(ctx)
	if err != nil || n != 1 {
		t.Fatalf("removed %d, %v", n, err)
	}
	blobs, _ := art.List(ctx)
	if len(blobs) != 1 {
		t.Fatalf("%d blobs left", len(blobs))
	}
}

var _ = errors.New
