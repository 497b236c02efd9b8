package modelship

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Asset types: a model is one file or one folder, as registered.
const (
	AssetFile   = "file"
	AssetFolder = "folder"
)

// Model frameworks known to the registry (Azure ML's Model.Framework values).
// Others are accepted as given; these are the ones with built-in runtimes.
const (
	FrameworkOnnx        = "Onnx"
	FrameworkScikitLearn = "ScikitLearn"
	FrameworkTensorFlow  = "TensorFlow"
	FrameworkPyTorch     = "PyTorch"
	FrameworkCustom      = "Custom"
	FrameworkMulti       = "Multi"
	FrameworkUnknown     = ""
)

// KnownFrameworks lists the accepted values of ModelFramework, matched
// case-insensitively and stored in this spelling.
var KnownFrameworks = []string{FrameworkOnnx, FrameworkScikitLearn, FrameworkTensorFlow, FrameworkPyTorch, FrameworkCustom, FrameworkMulti}

// NormalizeFramework returns the canonical spelling of a framework name or an
// EINVALID error listing the allowed values.
func NormalizeFramework(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	for _, f := range KnownFrameworks {
		if strings.EqualFold(f, s) {
			return f, nil
		}
	}
	return "", Errorf(EINVALID, "model framework %q is unknown; use one of %s", s, strings.Join(KnownFrameworks, ", "))
}

// ModelVersion is one registered version of a named model. Its bytes live in
// the artifact store under SHA256.
type ModelVersion struct {
	Workspace             string            `json:"workspace"`
	Name                  string            `json:"name"`
	Version               int               `json:"version"`
	Tags                  map[string]string `json:"tags"`
	Properties            map[string]string `json:"properties"`
	Description           string            `json:"description"`
	ModelFramework        string            `json:"modelFramework"`
	ModelFrameworkVersion string            `json:"modelFrameworkVersion"`
	AssetType             string            `json:"assetType"`          // "file" or "folder"
	FileName              string            `json:"fileName,omitempty"` // the registered file's name (file assets)
	FileCount             int               `json:"fileCount"`
	SizeBytes             int64             `json:"sizeBytes"`
	SHA256                string            `json:"sha256"`
	CreatedTime           time.Time         `json:"createdTime"`
}

// ID returns "name:version".
func (m *ModelVersion) ID() string { return fmt.Sprintf("%s:%d", m.Name, m.Version) }

// ModelRef names a model and optionally a version (0 means the latest).
type ModelRef struct {
	Name    string
	Version int
}

// String returns "name" or "name:version".
func (r ModelRef) String() string {
	if r.Version == 0 {
		return r.Name
	}
	return fmt.Sprintf("%s:%d", r.Name, r.Version)
}

// ParseModelRef parses "name" or "name:version".
func ParseModelRef(s string) (ModelRef, error) {
	name, ver, hasVer := strings.Cut(s, ":")
	if err := ValidateModelName(name); err != nil {
		return ModelRef{}, err
	}
	ref := ModelRef{Name: name}
	if hasVer {
		v, err := strconv.Atoi(ver)
		if err != nil || v < 1 {
			return ModelRef{}, Errorf(EINVALID, "model version %q in %q is invalid; use a whole number from 1, as in %s:1", ver, s, name)
		}
		ref.Version = v
	}
	return ref, nil
}

// ModelFilter selects model versions in List.
type ModelFilter struct {
	Name string            // exact name; empty for all
	Tags map[string]string // every tag must match; an empty value matches any value
}

// ModelUpdate changes a model version's mutable fields. Tags are replaced
// key by key; properties are add-only, as in Azure ML.
type ModelUpdate struct {
	AddTags       map[string]string `json:"addTags,omitempty"`
	RemoveTags    []string          `json:"removeTags,omitempty"`
	AddProperties map[string]string `json:"addProperties,omitempty"`
	Description   *string           `json:"description,omitempty"`
}

// Empty reports whether the update changes nothing.
func (u *ModelUpdate) Empty() bool {
	return len(u.AddTags) == 0 && len(u.RemoveTags) == 0 && len(u.AddProperties) == 0 && u.Description == nil
}

// Validate checks the update's fields.
func (u *ModelUpdate) Validate() error {
	if u.Empty() {
		return Errorf(EINVALID, "no changes given; pass tags to add or remove, properties to add, or a description")
	}
	if err := ValidateTags("tag", u.AddTags); err != nil {
		return err
	}
	if err := ValidateTags("property", u.AddProperties); err != nil {
		return err
	}
	if u.Description != nil && len(*u.Description) > MaxDescriptionLen {
		return Errorf(EINVALID, "description is %d characters long; at most %d are allowed", len(*u.Description), MaxDescriptionLen)
	}
	return nil
}

// RegisterRequest describes a new model version. Content is streamed: a raw
// file for AssetFile, a tar stream for AssetFolder.
type RegisterRequest struct {
	Workspace             string
	Name                  string
	Tags                  map[string]string
	Properties            map[string]string
	Description           string
	ModelFramework        string
	ModelFrameworkVersion string
	AssetType             string
	FileName              string // required for AssetFile
	ExpectedSHA256        string // optional; the upload is rejected if the content differs
	Content               io.Reader
	// Verify, when set, is called with the digest of the received content
	// once it is fully read and before anything is recorded; an error
	// rejects the upload (e.g. a digest the client sent in an HTTP trailer).
	Verify func(digest string) error
}

// Validate checks the metadata of a registration (not the content).
func (r *RegisterRequest) Validate() error {
	if err := ValidateWorkspaceName(r.Workspace); err != nil {
		return err
	}
	if err := ValidateModelName(r.Name); err != nil {
		return err
	}
	if err := ValidateTags("tag", r.Tags); err != nil {
		return err
	}
	if err := ValidateTags("property", r.Properties); err != nil {
		return err
	}
	if len(r.Description) > MaxDescriptionLen {
		return Errorf(EINVALID, "description is %d characters long; at most %d are allowed", len(r.Description), MaxDescriptionLen)
	}
	fw, err := NormalizeFramework(r.ModelFramework)
	if err != nil {
		return err
	}
	r.ModelFramework = fw
	switch r.AssetType {
	case AssetFile:
		if err := ValidateFileName(r.FileName); err != nil {
			return err
		}
	case AssetFolder:
		if r.FileName != "" {
			return Errorf(EINVALID, "fileName is only for file models; a folder model keeps the names inside it")
		}
	default:
		return Errorf(EINVALID, "asset type %q is invalid; use %q or %q", r.AssetType, AssetFile, AssetFolder)
	}
	if r.ExpectedSHA256 != "" && !isHexDigest(r.ExpectedSHA256) {
		return Errorf(EINVALID, "sha256 %q is not 64 lowercase hex digits", r.ExpectedSHA256)
	}
	return nil
}

// ValidateFileName checks the name of a registered file: one path element.
func ValidateFileName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") || len(name) > 255 {
		return Errorf(EINVALID, "file name %q is invalid; give a plain file name without '/' (at most 255 characters)", name)
	}
	return nil
}

func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ModelService is the model registry.
type ModelService interface {
	// RegisterModel stores the content and creates the next version of the
	// named model. The version becomes visible only once its bytes are fully
	// stored. Returns EINVALID (bad metadata, unsafe or corrupt content,
	// digest mismatch), ENOTFOUND (workspace) and ETOOLARGE.
	RegisterModel(ctx context.Context, req *RegisterRequest) (*ModelVersion, error)
	// FindModel returns one version, or the latest when ref.Version is 0.
	// Returns ENOTFOUND.
	FindModel(ctx context.Context, ws string, ref ModelRef) (*ModelVersion, error)
	// ListModels returns versions matching the filter, by name then version.
	ListModels(ctx context.Context, ws string, f ModelFilter) ([]*ModelVersion, error)
	// UpdateModel changes tags, properties or description. Returns ENOTFOUND,
	// EINVALID (including a change to an existing property).
	UpdateModel(ctx context.Context, ws string, ref ModelRef, upd *ModelUpdate) (*ModelVersion, error)
	// DeleteModel deletes one version; its bytes go when nothing else uses
	// them. Returns ENOTFOUND, ECONFLICT when a service uses the version.
	DeleteModel(ctx context.Context, ws string, ref ModelRef) error
	// OpenModelContent returns the version and a reader of its stored bytes
	// (the file, or a tar stream of the folder). The caller closes it.
	OpenModelContent(ctx context.Context, ws string, ref ModelRef) (*ModelVersion, io.ReadCloser, error)
}

// ArtifactStore keeps content-addressed blobs.
type ArtifactStore interface {
	// Put streams r into a temporary blob and returns a handle that commits
	// it under its digest. Nothing is visible until Commit.
	Put(ctx context.Context, r io.Reader) (PendingArtifact, error)
	// Open returns a reader of a blob. Returns ENOTFOUND.
	Open(ctx context.Context, digest string) (io.ReadCloser, error)
	// Delete removes a blob; a missing blob is not an error.
	Delete(ctx context.Context, digest string) error
	// List returns the digests of all stored blobs.
	List(ctx context.Context) ([]string, error)
}

// PendingArtifact is an uploaded blob waiting to be committed or discarded.
type PendingArtifact interface {
	Digest() string
	Size() int64
	// Commit moves the blob under its digest (atomic rename, fsync'd).
	Commit() error
	// Discard removes the temporary blob. Safe to call after Commit.
	Discard() error
}
