package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/sqlite"
	"github.com/modelship/modelship/storetest"
)

func TestConformanceMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) modelship.Store {
		db, err := sqlite.Open(context.Background(), ":memory:")
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}

func TestConformanceFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) modelship.Store {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "modelship.db"))
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "modelship.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	mv := &modelship.ModelVersion{Workspace: "default", Name: "m", AssetType: modelship.AssetFile, FileName: "a", SizeBytes: 1, SHA256: "ab"}
	if err := db.CreateModelVersion(ctx, mv); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, err := db.SchemaVersion(ctx)
	if err != nil || v != sqlite.Migrations() {
		t.Fatalf("schema version = %d, %v", v, err)
	}
	got, err := db.FindModelVersion(ctx, "default", modelship.ModelRef{Name: "m"})
	if err != nil || got.Version != 1 {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
}
