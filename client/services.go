package client

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/httpapi"
	"github.com/modelship/modelship/internal/tarutil"
)

// ServicesClient deploys and manages services.
type ServicesClient struct{ c *Client }

// ComputeTargetsClient manages compute targets.
type ComputeTargetsClient struct{ c *Client }

func wsPath(ws string) string { return "/api/v1/workspaces/" + url.PathEscape(ws) }

func svcPath(ws, name string) string { return wsPath(ws) + "/services/" + url.PathEscape(name) }

// Deployment is a started deploy, update or delete: the service as accepted
// and the asynchronous operation to follow.
type Deployment struct {
	c         *Client
	Workspace string
	Service   *modelship.Service
	// Endpoint is set when the deployment config had computeType
	// AKSENDPOINT: the deploy created an endpoint.
	Endpoint    *modelship.Endpoint
	OperationID string
}

// UploadSource streams a source folder (or a single script file) to the
// server and returns its digest for InferenceSpec.SourceDigest.
func (s *ServicesClient) UploadSource(ctx context.Context, ws, path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", modelship.Errorf(modelship.EINVALID, "source %q cannot be read: %v", path, err)
	}
	pr, pw := io.Pipe()
	srcErr := make(chan error, 1)
	go func() {
		var err error
		if info.IsDir() {
			err = tarutil.WriteDirAs(pw, path, "", s.c.warn)
		} else {
			err = writeSingleFileTar(pw, path, info)
		}
		if errors.Is(err, errRequestEnded) {
			err = nil // the request ended first; its error says why
		}
		srcErr <- err
		pw.CloseWithError(err)
	}()
	req, err := s.c.newRequest(ctx, http.MethodPost, wsPath(ws)+"/sources", nil, pr)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", httpapi.ContentTypeTar)
	var out httpapi.SourceResponse
	if err := s.c.doJSON(req, &out); err != nil {
		pr.CloseWithError(errRequestEnded)
		if serr := <-srcErr; serr != nil {
			// Reading the folder failed (not the server): say that.
			return "", modelship.Errorf(modelship.EINVALID, "source %q cannot be uploaded: %v", path, serr)
		}
		return "", err
	}
	return out.SHA256, nil
}

// errRequestEnded stops a folder upload whose request failed.
var errRequestEnded = errors.New("the upload request ended")

func writeSingleFileTar(w io.Writer, path string, info os.FileInfo) error {
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: filepath.Base(path), Mode: 0o644, Size: info.Size(), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(tw, f); err != nil {
		return err
	}
	return tw.Close()
}

// Deploy starts a deployment; call WaitForDeployment on the result.
func (s *ServicesClient) Deploy(ctx context.Context, ws string, req *modelship.DeployRequest) (*Deployment, error) {
	var out httpapi.DeployResponse
	if err := s.c.sendJSON(ctx, http.MethodPost, wsPath(ws)+"/services", req, &out); err != nil {
		return nil, err
	}
	return &Deployment{c: s.c, Workspace: ws, Service: out.Service, Endpoint: out.Endpoint, OperationID: out.OperationID}, nil
}

// Update starts an update of a service.
func (s *ServicesClient) Update(ctx context.Context, ws, name string, req *modelship.UpdateRequest) (*Deployment, error) {
	var out httpapi.DeployResponse
	if err := s.c.sendJSON(ctx, http.MethodPatch, svcPath(ws, name), req, &out); err != nil {
		return nil, err
	}
	return &Deployment{c: s.c, Workspace: ws, Service: out.Service, OperationID: out.OperationID}, nil
}

// Delete starts the deletion of a service.
func (s *ServicesClient) Delete(ctx context.Context, ws, name string) (*Deployment, error) {
	var out httpapi.DeployResponse
	if err := s.c.sendJSON(ctx, http.MethodDelete, svcPath(ws, name), nil, &out); err != nil {
		return nil, err
	}
	return &Deployment{c: s.c, Workspace: ws, OperationID: out.OperationID}, nil
}

// Get returns a service.
func (s *ServicesClient) Get(ctx context.Context, ws, name string) (*modelship.Service, error) {
	var out modelship.Service
	return &out, s.c.getJSON(ctx, svcPath(ws, name), nil, &out)
}

// List returns a workspace's services.
func (s *ServicesClient) List(ctx context.Context, ws string) ([]*modelship.Service, error) {
	var out []*modelship.Service
	return out, s.c.getJSON(ctx, wsPath(ws)+"/services", nil, &out)
}

// GetKeys returns the primary and secondary keys.
func (s *ServicesClient) GetKeys(ctx context.Context, ws, name string) (*modelship.ServiceKeys, error) {
	var out modelship.ServiceKeys
	return &out, s.c.sendJSON(ctx, http.MethodPost, svcPath(ws, name)+"/listkeys", nil, &out)
}

// RegenKey replaces the "Primary" or "Secondary" key; value may be empty
// for a generated key.
func (s *ServicesClient) RegenKey(ctx context.Context, ws, name, which, value string) (*modelship.ServiceKeys, error) {
	var out modelship.ServiceKeys
	return &out, s.c.sendJSON(ctx, http.MethodPost, svcPath(ws, name)+"/regenerateKeys", httpapi.RegenKeyRequest{KeyType: which, KeyValue: value}, &out)
}

// GetToken returns an access token of a token-auth service.
func (s *ServicesClient) GetToken(ctx context.Context, ws, name string) (*modelship.AccessToken, error) {
	var out modelship.AccessToken
	return &out, s.c.sendJSON(ctx, http.MethodPost, svcPath(ws, name)+"/token", nil, &out)
}

// GetLogs returns replica log lines.
func (s *ServicesClient) GetLogs(ctx context.Context, ws, name string, opts modelship.LogOptions) ([]string, error) {
	q := url.Values{}
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
	return out.Lines, s.c.getJSON(ctx, svcPath(ws, name)+"/logs", q, &out)
}

// Operation returns an operation with log lines after afterSeq.
func (c *Client) Operation(ctx context.Context, ws, id string, afterSeq int) (*modelship.Operation, error) {
	var out modelship.Operation
	q := url.Values{}
	if afterSeq > 0 {
		q.Set("after", strconv.Itoa(afterSeq))
	}
	return &out, c.getJSON(ctx, wsPath(ws)+"/operations/"+url.PathEscape(id), q, &out)
}

// WaitForDeployment polls the operation until it ends; with showOutput
// each new log line goes to out as it happens. It returns the final
// operation; a non-Succeeded end is an error carrying the operation's error.
func (d *Deployment) WaitForDeployment(ctx context.Context, showOutput bool, out io.Writer) (*modelship.Operation, error) {
	return d.c.WaitOperation(ctx, d.Workspace, d.OperationID, showOutput, out)
}

// WaitOperation follows an operation to its end.
func (c *Client) WaitOperation(ctx context.Context, ws, id string, showOutput bool, out io.Writer) (*modelship.Operation, error) {
	seq := 0
	delay := 50 * time.Millisecond
	for {
		op, err := c.Operation(ctx, ws, id, seq)
		if err != nil {
			return nil, err
		}
		for _, l := range op.Log {
			switch {
			case showOutput && out != nil:
				fmt.Fprintf(out, "%s %s\n", l.Time.Local().Format("15:04:05"), l.Message)
			case out != nil && strings.HasPrefix(l.Message, "Unschedulable: "):
				// A wait of minutes should not be silent: say why once.
				fmt.Fprintf(out, "%s %s (waiting for capacity; the deployment gives up after a while, as Azure's does; Ctrl-C stops waiting, not the deployment)\n", l.Time.Local().Format("15:04:05"), l.Message)
			}
			seq = l.Seq
		}
		if op.Done() {
			if op.State != modelship.OpSucceeded {
				msg := fmt.Sprintf("operation %s %s", op.ID, op.State)
				if op.Error != nil {
					msg += ": " + op.Error.Message
					for _, d := range op.Error.Details {
						msg += "\n  " + d
					}
				}
				return op, modelship.Errorf(modelship.EINTERNAL, "%s", msg)
			}
			return op, nil
		}
		select {
		case <-ctx.Done():
			return op, ctx.Err()
		case <-time.After(delay):
		}
		if delay < 500*time.Millisecond {
			delay += 50 * time.Millisecond
		}
	}
}

// List returns a workspace's compute targets.
func (t *ComputeTargetsClient) List(ctx context.Context, ws string) ([]*modelship.ComputeTarget, error) {
	var out []*modelship.ComputeTarget
	return out, t.c.getJSON(ctx, wsPath(ws)+"/computetargets", nil, &out)
}

// Get returns a compute target.
func (t *ComputeTargetsClient) Get(ctx context.Context, ws, name string) (*modelship.ComputeTarget, error) {
	var out modelship.ComputeTarget
	return &out, t.c.getJSON(ctx, wsPath(ws)+"/computetargets/"+url.PathEscape(name), nil, &out)
}

// CreateLocal creates a local target with a capacity budget.
func (t *ComputeTargetsClient) CreateLocal(ctx context.Context, ws string, req httpapi.CreateTargetRequest) (*httpapi.CreateTargetResponse, error) {
	req.ComputeType = modelship.TargetLocal
	var out httpapi.CreateTargetResponse
	return &out, t.c.sendJSON(ctx, http.MethodPost, wsPath(ws)+"/computetargets", req, &out)
}

// Delete removes a compute target.
func (t *ComputeTargetsClient) Delete(ctx context.Context, ws, name string) error {
	return t.c.sendJSON(ctx, http.MethodDelete, wsPath(ws)+"/computetargets/"+url.PathEscape(name), nil, nil)
}

// AttachKubernetes attaches a cluster (req.Kubeconfig is the file's
// content; the server validates it before saving anything).
func (t *ComputeTargetsClient) AttachKubernetes(ctx context.Context, ws string, req modelship.AttachRequest) (*httpapi.CreateTargetResponse, error) {
	var out httpapi.CreateTargetResponse
	return &out, t.c.sendJSON(ctx, http.MethodPost, wsPath(ws)+"/computetargets/attach", req, &out)
}

// Detach removes a kubernetes target and what modelship created in the
// cluster; force deletes the services and endpoints on it first.
func (t *ComputeTargetsClient) Detach(ctx context.Context, ws, name string, force bool) error {
	p := wsPath(ws) + "/computetargets/" + url.PathEscape(name) + "/detach"
	if force {
		p += "?force=true"
	}
	return t.c.sendJSON(ctx, http.MethodPost, p, nil, nil)
}

var _ = json.Marshal

// CollectedData returns the CSV rows a service's ModelDataCollector stored
// for a designation (model may be empty; since is "1h" or an RFC 3339 time).
func (s *ServicesClient) CollectedData(ctx context.Context, ws, name, designation, model, since string) ([]byte, error) {
	q := url.Values{"designation": {designation}}
	if model != "" {
		q.Set("model", model)
	}
	if since != "" {
		q.Set("since", since)
	}
	req, err := s.c.newRequest(ctx, http.MethodGet, svcPath(ws, name)+"/collected-data", q, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.c.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// FetchAccess returns a fetch URL and token with which a replica of a
// deployment (a service, or "<endpoint>.<version>") can run elsewhere.
func (s *ServicesClient) FetchAccess(ctx context.Context, ws, name string) (*modelship.FetchAccess, error) {
	var out modelship.FetchAccess
	return &out, s.c.sendJSON(ctx, http.MethodPost, svcPath(ws, name)+"/fetchaccess", nil, &out)
}
