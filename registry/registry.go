// Package registry is the model registry: it streams model content into the
// artifact store, checks it (digest, safe tar entries), and records versions
// in the store only once the bytes are safely stored.
package registry

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/internal/tarutil"
)

var _ modelship.ModelService = (*Service)(nil)

// UsageChecker reports what uses a model version ("" when nothing does), so
// that a version a service depends on cannot be deleted.
type UsageChecker func(ctx context.Context, ws string, mv *modelship.ModelVersion) (string, error)

// Service implements modelship.ModelService.
type Service struct {
	store     modelship.Store
	artifacts modelship.ArtifactStore
	log       *slog.Logger
	// InUse, when set, is consulted before a version is deleted.
	InUse UsageChecker
	// Referenced, when set, lists other digests in use (source folders of
	// services), which garbage collection and deletes keep.
	Referenced func(ctx context.Context) ([]string, error)

	// mu orders "commit blob + insert record" against "delete record +
	// delete blob", so a blob shared by two versions is never removed
	// while a new reference to it is being recorded.
	mu sync.Mutex
}

// New returns a registry over a store and an artifact store.
func New(store modelship.Store, artifacts modelship.ArtifactStore, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, artifacts: artifacts, log: log}
}

// RegisterModel implements modelship.ModelService.
func (s *Service) RegisterModel(ctx context.Context, req *modelship.RegisterRequest) (*modelship.ModelVersion, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if _, err := s.store.FindWorkspace(ctx, req.Workspace); err != nil {
		return nil, err
	}
	if req.Content == nil {
		return nil, modelship.Errorf(modelship.EINVALID, "no model content given")
	}
	var (
		pending modelship.PendingArtifact
		stats   contentStats
		err     error
	)
	if req.AssetType == modelship.AssetFolder {
		pending, stats, err = s.putFolder(ctx, req.Content)
	} else {
		pending, err = s.artifacts.Put(ctx, req.Content)
		if err == nil {
			stats = contentStats{files: 1, size: pending.Size()}
		}
	}
	if err != nil {
		return nil, uploadError(err)
	}
	defer pending.Discard()
	if req.AssetType == modelship.AssetFile && stats.size == 0 {
		return nil, modelship.Errorf(modelship.EINVALID, "model file %q is empty", req.FileName)
	}
	if req.ExpectedSHA256 != "" && req.ExpectedSHA256 != pending.Digest() {
		return nil, modelship.Errorf(modelship.EINVALID, "sha256 mismatch: the client sent %s but the server received content with %s; nothing was stored", req.ExpectedSHA256, pending.Digest())
	}
	if req.Verify != nil {
		if err := req.Verify(pending.Digest()); err != nil {
			return nil, err
		}
	}
	mv := &modelship.ModelVersion{
		Workspace: req.Workspace, Name: req.Name, Tags: req.Tags, Properties: req.Properties,
		Description: req.Description, ModelFramework: req.ModelFramework, ModelFrameworkVersion: req.ModelFrameworkVersion,
		AssetType: req.AssetType, FileName: req.FileName, FileCount: stats.files, SizeBytes: stats.size, SHA256: pending.Digest(),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := pending.Commit(); err != nil {
		return nil, fmt.Errorf("storing model bytes: %w", err)
	}
	if err := s.store.CreateModelVersion(ctx, mv); err != nil {
		s.deleteIfUnused(context.WithoutCancel(ctx), mv.SHA256)
		return nil, err
	}
	s.log.Info("model registered", "workspace", mv.Workspace, "model", mv.ID(), "size", mv.SizeBytes, "sha256", mv.SHA256)
	return mv, nil
}

// uploadError turns errors met while reading the upload into user errors.
func uploadError(err error) error {
	var me *modelship.Error
	if errors.As(err, &me) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return modelship.Errorf(modelship.ECANCELED, "upload canceled; nothing was stored")
	}
	return modelship.Errorf(modelship.EINVALID, "reading the upload failed (%v); nothing was stored", err)
}

type contentStats struct {
	files int
	size  int64
}

// putFolder streams a tar upload into the artifact store while checking each
// entry; an unsafe or corrupt tar aborts the upload.
func (s *Service) putFolder(ctx context.Context, content io.Reader) (modelship.PendingArtifact, contentStats, error) {
	pr, pw := io.Pipe()
	type result struct {
		p   modelship.PendingArtifact
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := s.artifacts.Put(ctx, pr)
		pr.CloseWithError(err) // unblock the writer if Put stopped early
		done <- result{p, err}
	}()
	stats, verr := checkTar(io.TeeReader(content, pw))
	if verr == nil {
		// Copy what follows the tar's end marker so the digest covers
		// exactly the bytes received.
		_, verr = io.CopyBuffer(pw, content, make([]byte, 64<<10))
	}
	pw.CloseWithError(verr)
	res := <-done
	if verr != nil {
		if res.p != nil {
			res.p.Discard()
		}
		return nil, stats, verr
	}
	if res.err != nil {
		return nil, stats, res.err
	}
	return res.p, stats, nil
}

// checkTar reads a tar stream to its end and rejects entries that could
// escape the model folder: absolute paths, "..", links pointing outside, and
// special files.
func checkTar(r io.Reader) (contentStats, error) {
	var st contentStats
	tr := tar.NewReader(r)
	buf := make([]byte, 1<<20)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		var me *modelship.Error
		if errors.As(err, &me) {
			return st, err
		}
		if err != nil {
			return st, modelship.Errorf(modelship.EINVALID, "the folder upload is not a complete tar stream (%v); nothing was stored", err)
		}
		name, err := tarutil.CleanName(hdr.Name)
		if err != nil {
			return st, modelship.Errorf(modelship.EINVALID, "%v; nothing was stored", err)
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			n, err := io.CopyBuffer(discard{}, tr, buf)
			var me *modelship.Error
			if errors.As(err, &me) {
				return st, err
			}
			if err != nil {
				return st, modelship.Errorf(modelship.EINVALID, "the folder upload ended inside %q (%v); nothing was stored", name, err)
			}
			st.files++
			st.size += n
		case tar.TypeDir:
		case tar.TypeSymlink, tar.TypeLink:
			if _, err := tarutil.LinkTarget(name, hdr); err != nil {
				return st, modelship.Errorf(modelship.EINVALID, "%v; nothing was stored", err)
			}
		default:
			return st, modelship.Errorf(modelship.EINVALID, "tar entry %q has unsupported type %q; only files, folders and links inside the folder are allowed", name, string(hdr.Typeflag))
		}
	}
	if st.files == 0 {
		return st, modelship.Errorf(modelship.EINVALID, "the model folder has no files; nothing was stored")
	}
	return st, nil
}

// UploadSource stores a tar stream of a source folder (the inference
// config's sourceDirectory) after the same safety checks as folder models,
// and returns its digest. Deployments reference it by digest.
func (s *Service) UploadSource(ctx context.Context, content io.Reader) (string, error) {
	pending, _, err := s.putFolder(ctx, content)
	if err != nil {
		return "", uploadError(err)
	}
	defer pending.Discard()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := pending.Commit(); err != nil {
		return "", fmt.Errorf("storing source folder: %w", err)
	}
	return pending.Digest(), nil
}

// discard is io.Discard without ReadFrom, so io.CopyBuffer uses our
// large buffer (io.Discard's own is 8 KiB).
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// FindModel implements modelship.ModelService.
func (s *Service) FindModel(ctx context.Context, ws string, ref modelship.ModelRef) (*modelship.ModelVersion, error) {
	return s.store.FindModelVersion(ctx, ws, ref)
}

// ListModels implements modelship.ModelService.
func (s *Service) ListModels(ctx context.Context, ws string, f modelship.ModelFilter) ([]*modelship.ModelVersion, error) {
	return s.store.ListModelVersions(ctx, ws, f)
}

// UpdateModel implements modelship.ModelService.
func (s *Service) UpdateModel(ctx context.Context, ws string, ref modelship.ModelRef, upd *modelship.ModelUpdate) (*modelship.ModelVersion, error) {
	return s.store.UpdateModelVersion(ctx, ws, ref, upd)
}

// DeleteModel implements modelship.ModelService.
func (s *Service) DeleteModel(ctx context.Context, ws string, ref modelship.ModelRef) error {
	if ref.Version == 0 {
		return modelship.Errorf(modelship.EINVALID, "give the version to delete, as in %s:1", ref.Name)
	}
	mv, err := s.store.FindModelVersion(ctx, ws, ref)
	if err != nil {
		return err
	}
	if s.InUse != nil {
		user, err := s.InUse(ctx, ws, mv)
		if err != nil {
			return err
		}
		if user != "" {
			return modelship.Errorf(modelship.ECONFLICT, "model %s is used by %s; delete or update that first", mv.ID(), user)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	deleted, inUse, err := s.store.DeleteModelVersion(ctx, ws, ref)
	if err != nil {
		return err
	}
	if !inUse && s.Referenced != nil {
		more, _ := s.Referenced(ctx)
		for _, d := range more {
			inUse = inUse || d == deleted.SHA256
		}
	}
	if !inUse {
		if err := s.artifacts.Delete(context.WithoutCancel(ctx), deleted.SHA256); err != nil {
			s.log.Warn("model bytes left behind; they are removed at the next start", "sha256", deleted.SHA256, "err", err)
		}
	}
	s.log.Info("model deleted", "workspace", ws, "model", deleted.ID())
	return nil
}

// OpenModelContent implements modelship.ModelService.
func (s *Service) OpenModelContent(ctx context.Context, ws string, ref modelship.ModelRef) (*modelship.ModelVersion, io.ReadCloser, error) {
	mv, err := s.store.FindModelVersion(ctx, ws, ref)
	if err != nil {
		return nil, nil, err
	}
	rc, err := s.artifacts.Open(ctx, mv.SHA256)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the bytes of %s: %w", mv.ID(), err)
	}
	return mv, rc, nil
}

func (s *Service) deleteIfUnused(ctx context.Context, digest string) {
	used, err := s.store.ModelDigests(ctx)
	if err != nil {
		return
	}
	for _, d := range used {
		if d == digest {
			return
		}
	}
	s.artifacts.Delete(ctx, digest)
}

// CollectGarbage removes blobs no model version references (left by a crash
// between storing bytes and recording the version). Call it at start, before
// serving.
func (s *Service) CollectGarbage(ctx context.Context) (removed int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	used, err := s.store.ModelDigests(ctx)
	if err != nil {
		return 0, err
	}
	if s.Referenced != nil {
		more, err := s.Referenced(ctx)
		if err != nil {
			return 0, err
		}
		used = append(used, more...)
	}
	keep := make(map[string]bool, len(used))
	for _, d := range used {
		keep[d] = true
	}
	blobs, err := s.artifacts.List(ctx)
	if err != nil {
		return 0, err
	}
	for _, d := range blobs {
		if !keep[d] {
			if err := s.artifacts.Delete(ctx, d); err != nil {
				return removed, err
			}
			removed++
		}
	}
	return removed, nil
}
