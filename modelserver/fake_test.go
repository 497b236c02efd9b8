package modelserver_test

import (
	"context"
	"sync/atomic"

	"github.com/modelship/modelship/modelserver"
	"github.com/modelship/modelship/oip"
)

// fakeRuntime is a modelserver.Runtime whose behaviour is set per test.
// Nil function fields fall back to simple defaults.
type fakeRuntime struct {
	score   func(ctx context.Context, req *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error)
	swagger func(ctx context.Context, version string) ([]byte, error)
	infer   func(ctx context.Context, model, version string, req *oip.InferRequest) (*oip.InferResponse, error)
	models  []modelserver.ModelMetadata

	notReady       atomic.Bool
	active, queued atomic.Int64
	closed         atomic.Bool
}

var _ modelserver.Runtime = (*fakeRuntime)(nil)

// echoScore answers with the request body, or the query for a GET.
func echoScore(_ context.Context, req *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error) {
	body := req.Body
	if req.Method == "GET" {
		body = []byte(req.RawQuery)
	}
	return &modelserver.ScoreResponse{
		Status: 200,
		Header: map[string][]string{"Content-Type": {"application/json"}},
		Body:   body,
	}, nil
}

func (f *fakeRuntime) Score(ctx context.Context, req *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error) {
	if f.score == nil {
		return echoScore(ctx, req)
	}
	return f.score(ctx, req)
}

func (f *fakeRuntime) Swagger(ctx context.Context, version string) ([]byte, error) {
	if f.swagger == nil {
		return []byte(`{"swagger":"` + version + `"}`), nil
	}
	return f.swagger(ctx, version)
}

func (f *fakeRuntime) Models() []modelserver.ModelMetadata { return f.models }

func (f *fakeRuntime) Infer(ctx context.Context, model, version string, req *oip.InferRequest) (*oip.InferResponse, error) {
	if f.infer == nil {
		return &oip.InferResponse{ModelName: model, ModelVersion: version, ID: req.ID, Outputs: req.Inputs}, nil
	}
	return f.infer(ctx, model, version, req)
}

func (f *fakeRuntime) Ready() bool { return !f.notReady.Load() }

func (f *fakeRuntime) Busy() (int, int) { return int(f.active.Load()), int(f.queued.Load()) }

func (f *fakeRuntime) Close(context.Context) error {
	f.closed.Store(true)
	return nil
}
