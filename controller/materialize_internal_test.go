package controller

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/artifact"
)

// Two file models with the same bytes under different names must each be
// laid out under their own registered name (the cache is keyed by content).
func TestModelRootSameBytesDifferentNames(t *testing.T) {
	ctx := context.Background()
	store, err := artifact.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, err := store.Put(ctx, strings.NewReader("the same weights"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	c := &cache{root: t.TempDir(), artifacts: store}
	first := &modelship.ModelVersion{Name: "first", Version: 1, AssetType: modelship.AssetFile, FileName: "first_name.bin", SHA256: p.Digest()}
	second := &modelship.ModelVersion{Name: "second", Version: 1, AssetType: modelship.AssetFile, FileName: "second_name.bin", SHA256: p.Digest()}
	for _, tc := range []struct {
		order []*modelship.ModelVersion
	}{
		{[]*modelship.ModelVersion{second}},
		{[]*modelship.ModelVersion{first}},
		{[]*modelship.ModelVersion{first, second}},
	} {
		dir := t.TempDir()
		root, err := c.modelRoot(ctx, dir, tc.order)
		if err != nil {
			t.Fatal(err)
		}
		for _, mv := range tc.order {
			folder := root
			if len(tc.order) > 1 {
				folder = filepath.Join(root, mv.Name, "1")
			}
			entries, err := os.ReadDir(folder)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].Name() != mv.FileName {
				t.Errorf("model %s laid out as %v, want only %s", mv.ID(), entries, mv.FileName)
			}
		}
	}
}
