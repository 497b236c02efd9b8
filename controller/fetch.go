package controller

import (
	"context"
	"io"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/auth"
)

// FetchTokenTTL is the lifetime of a replica's fetch token.
const FetchTokenTTL = 30 * 24 * time.Hour

func fetchAudience(ws, name string) string { return "modelship-fetch:" + ws + "/" + name }

// FetchAccess issues a token that lets a replica of one deployment (a
// service, or "<endpoint>.<version>") download its manifest and files.
func (c *Controller) FetchAccess(ctx context.Context, ws, name string) (*modelship.FetchAccess, error) {
	if _, err := c.store().FindService(ctx, ws, name); err != nil {
		return nil, err
	}
	tok, err := c.cfg.Signer.Issue(fetchAudience(ws, name), FetchTokenTTL)
	if err != nil {
		return nil, err
	}
	return &modelship.FetchAccess{URL: c.cfg.AdvertiseURL, Deployment: ws + "/" + name, Token: tok.AccessToken, ExpiryOn: tok.ExpiryOn}, nil
}

// CheckFetchToken verifies a fetch token for a deployment.
func (c *Controller) CheckFetchToken(ws, name, token string) error {
	if err := auth.VerifyToken(token, c.cfg.Signer.PublicKeys(), fetchAudience(ws, name), time.Now()); err != nil {
		return modelship.Errorf(modelship.EUNAUTHORIZED, "missing or invalid fetch token")
	}
	return nil
}

// FetchManifest lists the files of a deployment's replicas.
func (c *Controller) FetchManifest(ctx context.Context, ws, name string) (*modelship.FetchManifest, error) {
	svc, err := c.store().FindService(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	m := &modelship.FetchManifest{Workspace: ws, Deployment: name, EntryScript: svc.Inference.EntryScript, Runtime: svc.Inference.Runtime,
		Settings: svc.Settings, Models: []modelship.FetchModel{}}
	for _, id := range svc.Models {
		ref, err := modelship.ParseModelRef(id)
		if err != nil {
			return nil, err
		}
		mv, err := c.cfg.Models.FindModel(ctx, ws, ref)
		if err != nil {
			return nil, err
		}
		m.Models = append(m.Models, modelship.FetchModel{Name: mv.Name, Version: mv.Version, AssetType: mv.AssetType, FileName: mv.FileName,
			FetchBlob: modelship.FetchBlob{SHA256: mv.SHA256, SizeBytes: mv.SizeBytes}})
	}
	if d := svc.Inference.SourceDigest; d != "" {
		m.Source = &modelship.FetchBlob{SHA256: d}
	}
	return m, nil
}

// OpenFetchBlob opens one of a deployment's blobs; ENOTFOUND for a digest
// its manifest does not list.
func (c *Controller) OpenFetchBlob(ctx context.Context, ws, name, digest string) (io.ReadCloser, error) {
	m, err := c.FetchManifest(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	ok := m.Source != nil && m.Source.SHA256 == digest
	for _, mv := range m.Models {
		ok = ok || mv.SHA256 == digest
	}
	if !ok {
		return nil, modelship.Errorf(modelship.ENOTFOUND, "deployment %s/%s has no file %s", ws, name, digest)
	}
	return c.cfg.Artifacts.Open(ctx, digest)
}
