package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/httpapi"
)

// EndpointsClient manages controlled-rollout endpoints.
type EndpointsClient struct{ c *Client }

func epPath(ws, name string) string { return wsPath(ws) + "/endpoints/" + url.PathEscape(name) }

// EndpointChange is the answer to an endpoint call: the endpoint and, when
// a deployment started, the operation to wait for.
type EndpointChange struct {
	Endpoint    *modelship.Endpoint
	OperationID string
	Workspace   string
	c           *Client
}

func (e *EndpointsClient) change(ctx context.Context, ws, method, path string, in any) (*EndpointChange, error) {
	var out httpapi.EndpointResponse
	if err := e.c.sendJSON(ctx, method, path, in, &out); err != nil {
		return nil, err
	}
	return &EndpointChange{Endpoint: out.Endpoint, OperationID: out.OperationID, Workspace: ws, c: e.c}, nil
}

// Create creates an endpoint with its first version.
func (e *EndpointsClient) Create(ctx context.Context, ws string, req *modelship.EndpointCreateRequest) (*EndpointChange, error) {
	return e.change(ctx, ws, http.MethodPost, wsPath(ws)+"/endpoints", req)
}

// Get returns an endpoint; metrics adds live stats and comparisons.
func (e *EndpointsClient) Get(ctx context.Context, ws, name string, metrics bool) (*modelship.Endpoint, error) {
	var out modelship.Endpoint
	q := url.Values{}
	if metrics {
		q.Set("metrics", "true")
	}
	return &out, e.c.getJSON(ctx, epPath(ws, name), q, &out)
}

// List returns a workspace's endpoints.
func (e *EndpointsClient) List(ctx context.Context, ws string) ([]*modelship.Endpoint, error) {
	var out []*modelship.Endpoint
	return out, e.c.getJSON(ctx, wsPath(ws)+"/endpoints", nil, &out)
}

// Update changes endpoint-level settings.
func (e *EndpointsClient) Update(ctx context.Context, ws, name string, req *modelship.EndpointUpdateRequest) (*EndpointChange, error) {
	return e.change(ctx, ws, http.MethodPatch, epPath(ws, name), req)
}

// Delete starts deleting an endpoint and its versions.
func (e *EndpointsClient) Delete(ctx context.Context, ws, name string) (*EndpointChange, error) {
	return e.change(ctx, ws, http.MethodDelete, epPath(ws, name), nil)
}

// CreateVersion adds a version.
func (e *EndpointsClient) CreateVersion(ctx context.Context, ws, name string, req *modelship.VersionRequest) (*EndpointChange, error) {
	return e.change(ctx, ws, http.MethodPost, epPath(ws, name)+"/versions", req)
}

// UpdateVersion changes a version's traffic, flags or deployment.
func (e *EndpointsClient) UpdateVersion(ctx context.Context, ws, name string, req *modelship.VersionRequest) (*EndpointChange, error) {
	return e.change(ctx, ws, http.MethodPatch, epPath(ws, name)+"/versions/"+url.PathEscape(req.Name), req)
}

// DeleteVersion starts deleting a version.
func (e *EndpointsClient) DeleteVersion(ctx context.Context, ws, name, version string) (*EndpointChange, error) {
	return e.change(ctx, ws, http.MethodDelete, epPath(ws, name)+"/versions/"+url.PathEscape(version), nil)
}

// PromoteVersion makes a version the control and the default.
func (e *EndpointsClient) PromoteVersion(ctx context.Context, ws, name, version string) (*EndpointChange, error) {
	return e.change(ctx, ws, http.MethodPost, epPath(ws, name)+"/versions/"+url.PathEscape(version)+"/promote", nil)
}

// GetKeys returns the endpoint's keys.
func (e *EndpointsClient) GetKeys(ctx context.Context, ws, name string) (*modelship.ServiceKeys, error) {
	var out modelship.ServiceKeys
	return &out, e.c.sendJSON(ctx, http.MethodPost, epPath(ws, name)+"/listkeys", nil, &out)
}

// RegenKey replaces the Primary or Secondary key.
func (e *EndpointsClient) RegenKey(ctx context.Context, ws, name, which, value string) (*modelship.ServiceKeys, error) {
	var out modelship.ServiceKeys
	return &out, e.c.sendJSON(ctx, http.MethodPost, epPath(ws, name)+"/regenerateKeys", httpapi.RegenKeyRequest{KeyType: which, KeyValue: value}, &out)
}

// GetToken returns an access token of a token-auth endpoint.
func (e *EndpointsClient) GetToken(ctx context.Context, ws, name string) (*modelship.AccessToken, error) {
	var out modelship.AccessToken
	return &out, e.c.sendJSON(ctx, http.MethodPost, epPath(ws, name)+"/token", nil, &out)
}

// GetLogs returns the logs of one version ("" = all).
func (e *EndpointsClient) GetLogs(ctx context.Context, ws, name, version string, opts modelship.LogOptions) ([]string, error) {
	q := url.Values{}
	if version != "" {
		q.Set("version", version)
	}
	if opts.Tail > 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	if opts.Init {
		q.Set("init", "true")
	}
	if opts.Replica >= 0 {
		q.Set("replica", strconv.Itoa(opts.Replica))
	}
	var out httpapi.LogsResponse
	return out.Lines, e.c.getJSON(ctx, epPath(ws, name)+"/logs", q, &out)
}
