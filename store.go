package modelship

import "context"

// ModelStore keeps model version records. Implementations allocate versions
// atomically: concurrent creates of one name get consecutive versions with no
// gaps, and a deleted version's number is never reused.
type ModelStore interface {
	// CreateModelVersion assigns mv.Version (last version of the name + 1)
	// and mv.CreatedTime, and stores the record. Returns ENOTFOUND if the
	// workspace does not exist.
	CreateModelVersion(ctx context.Context, mv *ModelVersion) error
	// FindModelVersion returns one version, the latest when ref.Version is 0.
	// Returns ENOTFOUND.
	FindModelVersion(ctx context.Context, ws string, ref ModelRef) (*ModelVersion, error)
	// ListModelVersions returns matching versions ordered by name, version.
	ListModelVersions(ctx context.Context, ws string, f ModelFilter) ([]*ModelVersion, error)
	// UpdateModelVersion applies upd. Returns ENOTFOUND, and EINVALID when
	// a property that exists would change.
	UpdateModelVersion(ctx context.Context, ws string, ref ModelRef, upd *ModelUpdate) (*ModelVersion, error)
	// DeleteModelVersion removes a version record and reports whether any
	// other record still references its digest. Returns ENOTFOUND.
	DeleteModelVersion(ctx context.Context, ws string, ref ModelRef) (deleted *ModelVersion, digestInUse bool, err error)
	// ModelDigests returns every digest referenced by a model version.
	ModelDigests(ctx context.Context) ([]string, error)
}

// Store is everything the control plane persists.
type Store interface {
	WorkspaceService
	ModelStore
	ServiceStore
	ComputeTargetStore
	EndpointStore
	// Close releases the store.
	Close() error
}
