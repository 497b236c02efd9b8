package onnx

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/modelship/modelship/modelserver"
	"github.com/modelship/modelship/oip"
)

// Score handles the Azure /score route for ONNX models (no-code deploy).
//
// The request is a POST with a JSON object body, in one of two forms:
//
//	{"data": [[5.1, 3.5, 1.4, 0.2]]}                  // a model with one input
//	{"<input name>": [[...]], "<other input>": [...]}  // every input by name
//
// Arrays take the model's element type and their shape comes from the
// nesting; an array one dimension short of the model's rank gets a leading
// batch dimension of 1. The 200 answer (application/json) is a JSON object
// mapping each output name to its nested array, e.g.
//
//	{"label": [3], "probabilities": [[0.01, 0.02, ...]]}
//
// When several models are served the query string selects one,
// /score?model=<name>[&version=<version>]; without it the request gets a 400
// naming the models. A bad request gets a 400 with {"message": "..."}; GET
// gets a 405. Timeouts return modelserver.ErrScoringTimeout (wrapped) and
// failures of ONNX Runtime itself plain errors (500).
func (r *Runtime) Score(ctx context.Context, req *modelserver.ScoreRequest) (*modelserver.ScoreResponse, error) {
	if req.Method != http.MethodPost {
		resp := message(http.StatusMethodNotAllowed, `ONNX models are scored with POST and a JSON body such as {"data": [[...]]}`)
		resp.Header.Set("Allow", http.MethodPost)
		return resp, nil
	}
	q, err := url.ParseQuery(req.RawQuery)
	if err != nil {
		return message(http.StatusBadRequest, "invalid query string: "+err.Error()), nil
	}
	m, err := r.lookup(q.Get("model"), q.Get("version"))
	if err != nil {
		return inferErrorResponse(err)
	}
	inputs, err := m.scoreInputs(req.Body)
	if err != nil {
		return inferErrorResponse(err)
	}
	start := time.Now()
	outs, err := r.run(ctx, m, inputs)
	exec := time.Since(start)
	if err != nil {
		return inferErrorResponse(err)
	}
	body := make([]byte, 0, 64)
	body = append(body, '{')
	for i := range outs {
		if i > 0 {
			body = append(body, ',')
		}
		key, _ := json.Marshal(outs[i].Name)
		body = append(body, key...)
		body = append(body, ':')
		if body, err = oip.AppendTensorData(body, &outs[i], true); err != nil {
			return nil, err
		}
	}
	body = append(body, '}')
	return &modelserver.ScoreResponse{
		Status:   http.StatusOK,
		Header:   http.Header{"Content-Type": {"application/json"}},
		Body:     body,
		ExecTime: exec,
	}, nil
}

// scoreInputs decodes a /score body into the model's inputs, in model order.
func (m *model) scoreInputs(body []byte) ([]*oip.Tensor, error) {
	inputs := make([]*oip.Tensor, len(m.inputs))
	err := oip.ScanObject(body, func(key string, value []byte) error {
		j := m.inputIndex(key)
		if j < 0 && key == "data" && len(m.inputs) == 1 {
			j = 0
		}
		if j < 0 {
			if len(m.inputs) == 1 {
				return badRequest(`model %q has one input, %s; send {"data": [...]} or {%q: [...]}`, m.name, list(m.inputs), m.inputs[0].name)
			}
			return badRequest("model %q has no input %q; its inputs are %s", m.name, key, list(m.inputs))
		}
		if inputs[j] != nil {
			return badRequest("input %q is given twice", m.inputs[j].name)
		}
		info := &m.inputs[j]
		data, shape, err := oip.DecodeTensorData(value, info.datatype)
		if err != nil {
			return badRequest("input %q: %v", info.name, err)
		}
		if len(shape) == len(info.shape)-1 && info.shape[0] <= 1 {
			shape = append([]int64{1}, shape...)
		}
		inputs[j] = &oip.Tensor{Name: info.name, Datatype: info.datatype, Shape: shape, Data: data}
		return nil
	})
	if err != nil {
		var ie *modelserver.InferError
		if !errors.As(err, &ie) {
			err = badRequest(`the body must be a JSON object such as {"data": [[...]]}: %v`, err)
		}
		return nil, err
	}
	for j, t := range inputs {
		if t == nil {
			return nil, badRequest("input %q is missing; model %q needs %s", m.inputs[j].name, m.name, list(m.inputs))
		}
	}
	return inputs, nil
}

// inferErrorResponse turns an *InferError into a {"message"} response and
// returns other errors as they are.
func inferErrorResponse(err error) (*modelserver.ScoreResponse, error) {
	var ie *modelserver.InferError
	if errors.As(err, &ie) {
		return message(ie.Status, ie.Message), nil
	}
	return nil, err
}

func message(status int, msg string) *modelserver.ScoreResponse {
	body, _ := json.Marshal(map[string]string{"message": msg})
	return &modelserver.ScoreResponse{
		Status: status,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   body,
	}
}
