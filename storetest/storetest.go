// Package storetest is the conformance suite every modelship.Store must
// pass. A store's own tests call Run with a function that opens a fresh,
// empty store.
package storetest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/modelship/modelship"
)

// Opener returns a new, empty store; the suite closes it.
type Opener func(t *testing.T) modelship.Store

// Run runs the conformance suite.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s modelship.Store)
	}{
		{"DefaultWorkspace", testDefaultWorkspace},
		{"WorkspaceCRUD", testWorkspaceCRUD},
		{"WorkspaceDeleteNonEmpty", testWorkspaceDeleteNonEmpty},
		{"ModelVersionsIncrease", testModelVersionsIncrease},
		{"ModelVersionsNotReused", testModelVersionsNotReused},
		{"ModelConcurrentCreate", testModelConcurrentCreate},
		{"ModelFindLatest", testModelFindLatest},
		{"ModelNotFound", testModelNotFound},
		{"ModelList", testModelList},
		{"ModelUpdate", testModelUpdate},
		{"ModelDeleteDigestInUse", testModelDeleteDigestInUse},
		{"WorkspaceScoping", testWorkspaceScoping},
		{"ServiceCRUD", testServiceCRUD},
		{"Operations", testOperations},
		{"ComputeTargets", testComputeTargets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tt.fn(t, s)
		})
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := modelship.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newVersion(ws, name, digest string) *modelship.ModelVersion {
	return &modelship.ModelVersion{Workspace: ws, Name: name, AssetType: modelship.AssetFile, FileName: "model.onnx",
		FileCount: 1, SizeBytes: 10, SHA256: digest, Tags: map[string]string{"team": "risk"}}
}

func testDefaultWorkspace(t *testing.T, s modelship.Store) {
	ctx := context.Background()
	ws, err := s.FindWorkspace(ctx, modelship.DefaultWorkspace)
	must(t, err)
	if ws.Name != "default" || ws.CreatedTime.IsZero() {
		t.Fatalf("default workspace = %+v", ws)
	}
	wantCode(t, s.DeleteWorkspace(ctx, "default"), modelship.ECONFLICT)
}

func testWorkspaceCRUD(t *testing.T, s modelship.Store) {
	ctx := context.Background()
	must(t, s.CreateWorkspace(ctx, &modelship.Workspace{Name: "team-a", Description: "A"}))
	wantCode(t, s.CreateWorkspace(ctx, &modelship.Workspace{Name: "team-a"}), modelship.ECONFLICT)
	wantCode(t, s.CreateWorkspace(ctx, &modelship.Workspace{Name: "Bad_Name"}), modelship.EINVALID)
	list, err := s.ListWorkspaces(ctx)
	must(t, err)
	if len(list) != 2 || list[0].Name != "default" || list[1].Name != "team-a" || list[1].Description != "A" {
		t.Fatalf("list = %+v", list)
	}
	must(t, s.DeleteWorkspace(ctx, "team-a"))
	_, err = s.FindWorkspace(ctx, "team-a")
	wantCode(t, err, modelship.ENOTFOUND)
	wantCode(t, s.DeleteWorkspace(ctx, "team-a"), modelship.ENOTFOUND)
}

func testWorkspaceDeleteNonEmpty(t *testing.T, s modelship.Store) {
	ctx := context.Background()
	must(t, s.CreateWorkspace(ctx, &modelship.Workspace{Name: "full"}))
	must(t, s.CreateModelVersion(ctx, newVersion("full", "m", digest(1))))
	wantCode(t, s.DeleteWorkspace(ctx, "full"), modelship.ECONFLICT)
	_, _, err := s.DeleteModelVersion(ctx, "full", modelship.ModelRef{Name: "m", Version: 1})
	must(t, err)
	must(t, s.DeleteWorkspace(ctx, "full"))
}

func digest(i int) string { return fmt.Sprintf("%064x", i) }

func testModelVersionsIncrease(t *testing.T, s modelship.Store) {
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		mv := newVersion("default", "diabetes", digest(i))
		must(t, s.CreateModelVersion(ctx, mv))
		if mv.Version != i || mv.CreatedTime.IsZero() {
			t.Fatalf("version %d: got %+v", i, mv)
		}
	}
	other := newVersion("default", "other", digest(9))
	must(t, s.CreateModelVersion(ctx, other))
	if other.Version != 1 {
		t.Fatalf("other model version = %d, want 1", other.Version)
	}
	wantCode(t, s.CreateModelVersion(ctx, newVersion("nope", "m", digest(1))), modelship.ENOTFOUND)
}

func testModelVersionsNotReused(t *testing.T, s modelship.Store) {
	ctx := context.Background()
	must(t, s.CreateModelVersion(ctx, newVersion("default", "m", digest(1))))
	must(t, s.CreateModelVersion(ctx, newVersion("default", "m", digest(2))))
	_, _, err := s.DeleteModelVersion(ctx, "default", modelship.ModelRef{Name: "m", Version: 2})
	must(t, err)
	mv := newVersion("default", "m", digest(3))
	must(t, s.CreateModelVersion(ctx, mv))
	if mv.Version != 3 {
		t.Fatalf("after deleting v2, new version = %d, want 3", mv.Version)
	}
}

func testModelConcurrentCreate(t *testing.T, s modelship.Store) {
	ctx := context.Background()
	const n = 20
	var wg sync.WaitGroup
	versions := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mv := newVersion("default", "concurrent", digest(i))
			errs[i] = s.CreateModelVersion(ctx, mv)
			versions[i] = mv.Version
		}()
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	sort.Ints(versions)
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("versions = %v, want 1..%d", versions, n)
		}
	}
}

func testModelFindLatest(t *testing.T, s modelship.Store) {
	ctx := context.Background()
	must(t, s.CreateModelVersion(ctx, newVersion("default", "m", digest(1))))
	must(t, s.CreateModelVersion(ctx, newVersion("default", "m", digest(2))))
	m, err := s.FindModelVersion(ctx, "default", modelship.ModelRef{Name: "m"})
	must(t, err)
	if m.Version != 2 || m.SHA256 != digest(2) || m.Tags["team"] != "risk" || m.FileName != "model.onnx" {
		t.Fatalf("latest = %+v", m)
	}
	m, err = s.FindModelVersion(ctx, "default", modelship.ModelRef{Name: "m", Version: 1})
	must(t, err)
	if m.Version != 1 || m.SHA256 != digest(1) {
		t.Fatalf("v1 = %+v", m)
	}
}

func testModelNotFound(t *testing.T, s modelship.Store) {
	ctx := context.Background()
	_, err := s.FindModelVersion(ctx, "default", modelship.ModelRef{Name: "ghost"})
	wantCode(t, err, modelship.ENOTFOUND)
	must(t, s.CreateModelVersion(ctx, newVersion("default", "m", digest(1))))
	_, err = s.FindModelVersion(ctx, "default", modelship.ModelRef{Name: "m", Version: 7})
	wantCode(t, err, modelship.ENOTFOUND)
	_, err = s.FindModelVersion(ctx, "nowhere", modelship.ModelRef{Name: "m"})
	wantCode(t, err, modelship.ENOTFOUND)
	_, _, err = s.DeleteModelVersion(ctx, "default", modelship.ModelRef{Name: "m", Version: 7})
	wantCode(t, err, modelship.ENOTFOUND)
	desc := "x"
	_, err = s.UpdateModelVersion(ctx, "default", modelship.ModelRef{Name: "m", Version: 7}, &modelship.ModelUpdate{Description: &desc})
	wantCode(t, err, modelship.ENOTFOUND)
}

func testModelList(t *testing.T, s modelship.Store) {
	ctx := context.Background()
	a := newVersion("default", "b-model", digest(1))
	b := newVersion("default", "a-model", digest(2))
	b.Tags = map[string]string{"stage": "prod"}
	c := newVersion("default", "a-model", digest(3))
	for _, mv := range []*modelship.ModelVersion{a, b, c} {
		must(t, s.CreateModelVersion(ctx, mv))
	}
	all, err := s.ListModelVersions(ctx, "default", modelship.ModelFilter{})
	must(t, err)
	var ids []string
	for _, m := range all {
		ids = append(ids, m.ID())
	}
	if fmt.Sprint(ids) != "[a-model:1 a-model:2 b-model:1]" {
		t.Fatalf("list = %v", ids)
	}
	byName, err := s.ListModelVersions(ctx, "default", modelship.ModelFilter{Name: "b-model"})
	must(t, err)
	if len(byName) != 1 || byName[0].Name != "b-model" {
		t.Fatalf("by name = %v", byName)
	}
	byTag, err := s.ListModelVersions(ctx, "default", modelship.ModelFilter{Tags: map[string]string{"stage": "prod"}})
	must(t, err)
	if len(byTag) != 1 || byTag[0].ID() != "a-model:1" {
		t.Fatalf("by tag = %v", byTag)
	}
	anyVal, err := s.ListModelVersions(ctx, "default", modelship.ModelFilter{Tags: map[string]string{"team": ""}})
	must(t, err)
	if len(anyVal) != 2 {
		t.Fatalf("by tag key = %d versions, want 2", len(anyVal))
	}
	empty, err := s.ListModelVersions(ctx, "default", modelship.ModelFilter{Name: "none"})
	must(t, err)
	if empty == nil || len(empty) != 0 {
		t.Fatalf("empty list = %#v, want an empty non-nil slice", empty)
	}
}

func testModelUpdate(t *testing.T, s modelship.Store) {
	ctx := context.Background()
	mv := newVersion("default", "m", digest(1))
	mv.Properties = map[string]string{"auc": "0.9"}
	must(t, s.CreateModelVersion(ctx, mv))
	ref := modelship.ModelRef{Name: "m", Version: 1}
	desc := "v1 of the risk model"
	got, err := s.UpdateModelVersion(ctx, "default", ref, &modelship.ModelUpdate{
		AddTags: map[string]string{"stage": "prod"}, RemoveTags: []string{"team"},
		AddProperties: map[string]string{"owner": "ana"}, Description: &desc,
	})
	must(t, err)
	if got.Tags["stage"] != "prod" || len(got.Tags) != 1 || got.Properties["owner"] != "ana" || got.Properties["auc"] != "0.9" || got.Description != desc {
		t.Fatalf("updated = %+v", got)
	}
	again, err := s.FindModelVersion(ctx, "default", ref)
	must(t, err)
	if again.Tags["stage"] != "prod" || again.Description != desc {
		t.Fatalf("stored = %+v", again)
	}
	// Properties are add-only: the same value is fine, another value is not.
	_, err = s.UpdateModelVersion(ctx, "default", ref, &modelship.ModelUpdate{AddProperties: map[string]string{"auc": "0.9"}})
	must(t, err)
	_, err = s.UpdateModelVersion(ctx, "default", ref, &modelship.ModelUpdate{AddProperties: map[string]string{"auc": "0.8"}})
	wantCode(t, err, modelship.EINVALID)
	_, err = s.UpdateModelVersion(ctx, "default", ref, &modelship.ModelUpdate{})
	wantCode(t, err, modelship.EINVALID)
	after, err := s.FindModelVersion(ctx, "default", ref)
	must(t, err)
	if after.Properties["auc"] != "0.9" {
		t.Fatalf("rejected update changed the record: %+v", after)
	}
}

func testModelDeleteDigestInUse(t *testing.T, s modelship.Store) {
	ctx := context.Background()
	must(t, s.CreateModelVersion(ctx, newVersion("default", "m", digest(1))))
	must(t, s.CreateModelVersion(ctx, newVersion("default", "m", digest(1))))
	_, inUse, err := s.DeleteModelVersion(ctx, "default", modelship.ModelRef{Name: "m", Version: 1})
	must(t, err)
	if !inUse {
		t.Fatal("digest shared with m:2 reported unused")
	}
	digests, err := s.ModelDigests(ctx)
	must(t, err)
	if len(digests) != 1 || digests[0] != digest(1) {
		t.Fatalf("digests = %v", digests)
	}
	_, inUse, err = s.DeleteModelVersion(ctx, "default", modelship.ModelRef{Name: "m", Version: 2})
	must(t, err)
	if inUse {
		t.Fatal("last reference reported in use")
	}
}

func testWorkspaceScoping(t *testing.T, s modelship.Store) {
	ctx := context.Background()
	must(t, s.CreateWorkspace(ctx, &modelship.Workspace{Name: "other"}))
	must(t, s.CreateModelVersion(ctx, newVersion("other", "m", digest(1))))
	_, err := s.FindModelVersion(ctx, "default", modelship.ModelRef{Name: "m"})
	wantCode(t, err, modelship.ENOTFOUND)
	mv := newVersion("default", "m", digest(2))
	must(t, s.CreateModelVersion(ctx, mv))
	if mv.Version != 1 {
		t.Fatalf("version in another workspace = %d, want 1", mv.Version)
	}
}

func testServiceCRUD(t *testing.T, s modelship.Store) {
	ctx := context.Background()
	svc := &modelship.Service{Workspace: "default", Name: "mysvc", State: modelship.StateTransitioning, Models: []string{"m:1"},
		Settings: modelship.ServiceSettings{AuthMode: modelship.AuthKey, CPU: 0.5}}
	must(t, s.CreateService(ctx, svc, [2]string{"sealed-a", "sealed-b"}))
	wantCode(t, s.CreateService(ctx, svc, [2]string{"x", "y"}), modelship.ECONFLICT)
	got, err := s.FindService(ctx, "default", "mysvc")
	must(t, err)
	if got.State != modelship.StateTransitioning || got.Settings.CPU != 0.5 || got.Models[0] != "m:1" {
		t.Fatalf("found %+v", got)
	}
	got.State = modelship.StateHealthy
	must(t, s.PutService(ctx, got))
	list, err := s.ListServices(ctx, "default")
	must(t, err)
	if len(list) != 1 || list[0].State != modelship.StateHealthy {
		t.Fatalf("list = %+v", list)
	}
	keys, err := s.ServiceKeys(ctx, "default", "mysvc")
	must(t, err)
	if keys != [2]string{"sealed-a", "sealed-b"} {
		t.Fatalf("keys = %v", keys)
	}
	must(t, s.SetServiceKeys(ctx, "default", "mysvc", [2]string{"c", "d"}))
	keys, _ = s.ServiceKeys(ctx, "default", "mysvc")
	if keys[0] != "c" {
		t.Fatalf("keys after set = %v", keys)
	}
	wantCode(t, s.DeleteWorkspace(ctx, "default"), modelship.ECONFLICT)
	must(t, s.DeleteService(ctx, "default", "mysvc"))
	_, err = s.FindService(ctx, "default", "mysvc")
	wantCode(t, err, modelship.ENOTFOUND)
	_, err = s.ServiceKeys(ctx, "default", "mysvc")
	wantCode(t, err, modelship.ENOTFOUND)
	wantCode(t, s.PutService(ctx, got), modelship.ENOTFOUND)
	wantCode(t, s.CreateService(ctx, &modelship.Service{Workspace: "ghost", Name: "x"}, [2]string{}), modelship.ENOTFOUND)
}

func testOperations(t *testing.T, s modelship.Store) {
	ctx := context.Background()
	op := &modelship.Operation{ID: "op-1", Workspace: "default", Target: "mysvc", Kind: modelship.OpCreate, State: modelship.OpRunning}
	must(t, s.CreateOperation(ctx, op))
	for i := range 3 {
		must(t, s.AppendOperationLog(ctx, "op-1", fmt.Sprintf("line %d", i)))
	}
	got, err := s.FindOperation(ctx, "op-1", 1)
	must(t, err)
	if len(got.Log) != 2 || got.Log[0].Seq != 2 || got.Log[0].Message != "line 1" {
		t.Fatalf("log after seq 1 = %+v", got.Log)
	}
	running, err := s.RunningOperations(ctx)
	must(t, err)
	if len(running) != 1 {
		t.Fatalf("running = %d", len(running))
	}
	must(t, s.FinishOperation(ctx, "op-1", modelship.OpFailed, &modelship.ServiceError{Code: "X", Message: "why"}))
	got, _ = s.FindOperation(ctx, "op-1", 0)
	if got.State != modelship.OpFailed || got.Error == nil || got.Error.Message != "why" || got.EndTime == nil || !got.Done() {
		t.Fatalf("finished op = %+v", got)
	}
	running, _ = s.RunningOperations(ctx)
	if len(running) != 0 {
		t.Fatalf("running after finish = %d", len(running))
	}
	_, err = s.FindOperation(ctx, "nope", 0)
	wantCode(t, err, modelship.ENOTFOUND)
}

func testComputeTargets(t *testing.T, s modelship.Store) {
	ctx := context.Background()
	ct := &modelship.ComputeTarget{Workspace: "default", Name: "dev", Type: modelship.TargetLocal, CPU: 2, MemoryGB: 8}
	must(t, s.CreateComputeTarget(ctx, ct))
	wantCode(t, s.CreateComputeTarget(ctx, ct), modelship.ECONFLICT)
	got, err := s.FindComputeTarget(ctx, "default", "dev")
	must(t, err)
	if got.CPU != 2 || got.CreatedTime.IsZero() {
		t.Fatalf("target = %+v", got)
	}
	list, err := s.ListComputeTargets(ctx, "default")
	must(t, err)
	if len(list) != 1 {
		t.Fatalf("targets = %+v", list)
	}
	got.Kubernetes = &modelship.KubernetesAttachment{Namespace: "ml", ClusterID: "uid-1", FrontEndURL: "http://10.0.0.1:30080"}
	must(t, s.PutComputeTarget(ctx, got))
	again, err := s.FindComputeTarget(ctx, "default", "dev")
	must(t, err)
	if again.Kubernetes == nil || again.Kubernetes.ClusterID != "uid-1" || again.Kubernetes.FrontEndURL != "http://10.0.0.1:30080" || !again.CreatedTime.Equal(got.CreatedTime) {
		t.Fatalf("after put: %+v", again)
	}
	wantCode(t, s.PutComputeTarget(ctx, &modelship.ComputeTarget{Workspace: "default", Name: "nope"}), modelship.ENOTFOUND)
	must(t, s.DeleteComputeTarget(ctx, "default", "dev"))
	_, err = s.FindComputeTarget(ctx, "default", "dev")
	wantCode(t, err, modelship.ENOTFOUND)
}
