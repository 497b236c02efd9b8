// Package client is the Go SDK of modelship: a typed client of the
// control-plane REST API. The CLI uses only this package.
//
//	c := client.New("http://127.0.0.1:8640", token)
//	mv, err := c.Models.Register(ctx, "default", client.RegisterOptions{Name: "diabetes", Path: "./model.onnx"})
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/httpapi"
)

// Client talks to one modelship server.
type Client struct {
	baseURL string
	token   string
	http    *http.Client

	Workspaces     *WorkspacesClient
	Models         *ModelsClient
	Services       *ServicesClient
	Endpoints      *EndpointsClient
	ComputeTargets *ComputeTargetsClient

	// warn receives what uploads leave out (a link that leads nowhere).
	warn func(string)
}

// Option configures a Client.
type Option func(*Client)

// WithWarnings sets where the client reports what it does not upload,
// such as a symbolic link in a folder that leads nowhere.
func WithWarnings(f func(string)) Option { return func(c *Client) { c.warn = f } }

// WithHTTPClient sets the HTTP client (timeouts, transport).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithTLSConfig sets the TLS configuration (e.g. a custom CA).
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *Client) {
		c.http = &http.Client{Transport: newTransport(cfg)}
	}
}

// newTransport returns a transport with large write and read buffers, so
// that model uploads and downloads move in big chunks.
func newTransport(tlsCfg *tls.Config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = tlsCfg
	t.WriteBufferSize = 256 << 10
	t.ReadBufferSize = 256 << 10
	return t
}

// New returns a client of the server at baseURL (e.g. http://127.0.0.1:8640)
// that authenticates with token.
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{baseURL: strings.TrimRight(baseURL, "/"), token: token, http: &http.Client{Transport: newTransport(nil)}}
	for _, o := range opts {
		o(c)
	}
	c.Workspaces = &WorkspacesClient{c: c}
	c.Models = &ModelsClient{c: c}
	c.Services = &ServicesClient{c: c}
	c.Endpoints = &EndpointsClient{c: c}
	c.ComputeTargets = &ComputeTargetsClient{c: c}
	return c
}

// HTTPClient returns the HTTP client (with the client's TLS settings), for
// calls outside the API such as scoring.
func (c *Client) HTTPClient() *http.Client { return c.http }

// BaseURL returns the server address the client uses.
func (c *Client) BaseURL() string { return c.baseURL }

func (c *Client) url(path string, q url.Values) string {
	u := c.baseURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), body)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// do sends req and returns the response if its status is 2xx; otherwise it
// decodes the error body into a *modelship.Error.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, modelship.Errorf(modelship.EUNAVAILABLE, "cannot reach the modelship server at %s: %v%s", c.baseURL, unwrapURLError(err), tlsHint(err))
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

// tlsHint explains the usual TLS failures: an untrusted certificate, a
// certificate for another name, https to a plain-http server.
func tlsHint(err error) string {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var record tls.RecordHeaderError
	switch {
	case errors.As(err, &unknown):
		return " — pass --ca-file <path> (or set MODELSHIP_CA_FILE) with the CA certificate of the server"
	case errors.As(err, &host):
		return " — use a URL with a host name the certificate covers"
	case errors.As(err, &record):
		return " — the server does not serve TLS there; use an http:// URL"
	}
	return ""
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func decodeError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var eb httpapi.ErrorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
		return &modelship.Error{Code: eb.Error.Code, Message: eb.Error.Message}
	}
	msg := strings.TrimSpace(string(body))
	if msg == "" {
		msg = resp.Status
	}
	return &modelship.Error{Code: httpapi.CodeForStatus(resp.StatusCode), Message: msg}
}

// getJSON, sendJSON: small helpers for JSON calls.
func (c *Client) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	req, err := c.newRequest(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return err
	}
	return c.doJSON(req, out)
}

func (c *Client) sendJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, nil, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.doJSON(req, out)
}

func (c *Client) doJSON(req *http.Request, out any) error {
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding the server's answer: %w", err)
	}
	return nil
}

// Version returns the server's version.
func (c *Client) Version(ctx context.Context) (string, error) {
	var v struct {
		Version string `json:"version"`
	}
	err := c.getJSON(ctx, "/api/v1/version", nil, &v)
	return v.Version, err
}

// WorkspacesClient manages workspaces.
type WorkspacesClient struct{ c *Client }

// List returns all workspaces.
func (w *WorkspacesClient) List(ctx context.Context) ([]*modelship.Workspace, error) {
	var out []*modelship.Workspace
	return out, w.c.getJSON(ctx, "/api/v1/workspaces", nil, &out)
}

// Create creates a workspace.
func (w *WorkspacesClient) Create(ctx context.Context, name, description string) (*modelship.Workspace, error) {
	var out modelship.Workspace
	return &out, w.c.sendJSON(ctx, http.MethodPost, "/api/v1/workspaces", &modelship.Workspace{Name: name, Description: description}, &out)
}

// Get returns one workspace.
func (w *WorkspacesClient) Get(ctx context.Context, name string) (*modelship.Workspace, error) {
	var out modelship.Workspace
	return &out, w.c.getJSON(ctx, "/api/v1/workspaces/"+url.PathEscape(name), nil, &out)
}

// Delete deletes an empty workspace.
func (w *WorkspacesClient) Delete(ctx context.Context, name string) error {
	return w.c.sendJSON(ctx, http.MethodDelete, "/api/v1/workspaces/"+url.PathEscape(name), nil, nil)
}
