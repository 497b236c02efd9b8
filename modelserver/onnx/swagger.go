package onnx

import (
	"cmp"
	"context"
	"encoding/json"
	"os"

	"github.com/modelship/modelship/modelserver"
	"github.com/modelship/modelship/oip"
)

// Swagger returns a Swagger 2.0 (version "2" or "2.0") or OpenAPI 3.0
// ("3" or "3.0") document of the service, shaped like Azure ML's: GET /
// (ServiceHealthCheck) and POST /score (RunMLService, Bearer security), with
// ServiceInput and ServiceOutput schemas derived from the model's signature
// (see Score for the body format). With several models it describes the
// first and lists the others under the "model" query parameter. Other
// versions return modelserver.ErrNoSwagger. The title, version and path
// prefix come from SERVICE_NAME, SERVICE_VERSION and SERVICE_PATH_PREFIX,
// as in Azure.
func (r *Runtime) Swagger(_ context.Context, version string) ([]byte, error) {
	switch version {
	case "2", "2.0":
		return json.MarshalIndent(r.swagger2(), "", "  ")
	case "3", "3.0":
		return json.MarshalIndent(r.openAPI3(), "", "  ")
	}
	return nil, modelserver.ErrNoSwagger
}

type obj = map[string]any

const (
	healthDescription = "Simple health check endpoint to ensure the service is up at any given point."
	healthOK          = "If service is up and running, this response will be returned with the content 'Healthy'"
	scoreDescription  = "Run web service's model and get the prediction output"
	scoreOK           = "The service processed the input correctly and provided a result prediction, if applicable."
	errorDescription  = "The service failed to execute due to an error."
	inputDescription  = "The input payload for executing the real-time machine learning service."
)

func info() obj {
	name := cmp.Or(os.Getenv("SERVICE_NAME"), "ML service")
	return obj{
		"title":       name,
		"description": "API specification for the Azure Machine Learning service " + name,
		"version":     cmp.Or(os.Getenv("SERVICE_VERSION"), "1.0"),
	}
}

func prefix() string { return os.Getenv("SERVICE_PATH_PREFIX") }

func bearer() obj {
	return obj{"type": "apiKey", "name": "Authorization", "in": "header",
		"description": "For example: Bearer abc123"}
}

func errorSchema() obj {
	return obj{"type": "object", "properties": obj{
		"status_code": obj{"type": "integer", "format": "int32"},
		"message":     obj{"type": "string"},
	}}
}

func (r *Runtime) swagger2() obj {
	errRef := obj{"$ref": "#/definitions/ErrorResponse"}
	params := []any{obj{"name": "serviceInputPayload", "in": "body", "description": inputDescription,
		"schema": obj{"$ref": "#/definitions/ServiceInput"}}}
	if p := r.modelParameter(); p != nil {
		p["in"], p["type"] = "query", "string"
		params = append(params, p)
	}
	return obj{
		"swagger":             "2.0",
		"info":                info(),
		"schemes":             []string{"https"},
		"consumes":            []string{"application/json"},
		"produces":            []string{"application/json"},
		"securityDefinitions": obj{"Bearer": bearer()},
		"paths": obj{
			prefix() + "/": obj{"get": obj{
				"operationId": "ServiceHealthCheck",
				"description": healthDescription,
				"responses": obj{
					"200":     obj{"description": healthOK, "schema": obj{"type": "string"}, "examples": obj{"application/json": "Healthy"}},
					"default": obj{"description": errorDescription, "schema": errRef},
				},
			}},
			prefix() + "/score": obj{"post": obj{
				"operationId": "RunMLService",
				"description": scoreDescription,
				"security":    []any{obj{"Bearer": []string{}}},
				"parameters":  params,
				"responses": obj{
					"200":     obj{"description": scoreOK, "schema": obj{"$ref": "#/definitions/ServiceOutput"}},
					"default": obj{"description": errorDescription, "schema": errRef},
				},
			}},
		},
		"definitions": obj{
			"ServiceInput":  r.models[0].inputSchema(),
			"ServiceOutput": r.models[0].outputSchema(),
			"ErrorResponse": errorSchema(),
		},
	}
}

func (r *Runtime) openAPI3() obj {
	errContent := obj{"application/json": obj{"schema": obj{"$ref": "#/components/schemas/ErrorResponse"}}}
	score := obj{
		"operationId": "RunMLService",
		"description": scoreDescription,
		"security":    []any{obj{"Bearer": []string{}}},
		"requestBody": obj{"description": inputDescription, "required": true,
			"content": obj{"application/json": obj{"schema": obj{"$ref": "#/components/schemas/ServiceInput"}}}},
		"responses": obj{
			"200":     obj{"description": scoreOK, "content": obj{"application/json": obj{"schema": obj{"$ref": "#/components/schemas/ServiceOutput"}}}},
			"default": obj{"description": errorDescription, "content": errContent},
		},
	}
	if p := r.modelParameter(); p != nil {
		p["in"], p["schema"] = "query", obj{"type": "string", "enum": p["enum"]}
		delete(p, "enum")
		score["parameters"] = []any{p}
	}
	return obj{
		"openapi": "3.0.1",
		"info":    info(),
		"paths": obj{
			prefix() + "/": obj{"get": obj{
				"operationId": "ServiceHealthCheck",
				"description": healthDescription,
				"responses": obj{
					"200":     obj{"description": healthOK, "content": obj{"text/plain": obj{"schema": obj{"type": "string"}, "example": "Healthy"}}},
					"default": obj{"description": errorDescription, "content": errContent},
				},
			}},
			prefix() + "/score": obj{"post": score},
		},
		"components": obj{
			"securitySchemes": obj{"Bearer": bearer()},
			"schemas": obj{
				"ServiceInput":  r.models[0].inputSchema(),
				"ServiceOutput": r.models[0].outputSchema(),
				"ErrorResponse": errorSchema(),
			},
		},
	}
}

// modelParameter describes the "model" query parameter when several models
// are served (without "in"), or returns nil.
func (r *Runtime) modelParameter() obj {
	if len(r.models) < 2 {
		return nil
	}
	var names []string
	for _, m := range r.models {
		names = append(names, m.name)
	}
	return obj{"name": "model", "required": true, "enum": names,
		"description": "The model to run; add version=<v> to pick a version. The schemas describe " + r.models[0].name + "."}
}

// inputSchema is the /score body schema: {"data": ...} for one input, else
// one property per input.
func (m *model) inputSchema() obj {
	props := obj{}
	var required []string
	for i := range m.inputs {
		key := m.inputs[i].name
		if len(m.inputs) == 1 {
			key = "data"
		}
		props[key] = arraySchema(&m.inputs[i], true)
		required = append(required, key)
	}
	return obj{"type": "object", "properties": props, "required": required}
}

func (m *model) outputSchema() obj {
	props := obj{}
	for i := range m.outputs {
		props[m.outputs[i].name] = arraySchema(&m.outputs[i], false)
	}
	return obj{"type": "object", "properties": props}
}

// arraySchema is the schema of a nested array of t's shape, with an
// all-zero example when the tensor is small (dynamic dimensions taken as 1).
func arraySchema(t *tensorInfo, example bool) obj {
	s := elementSchema(t.datatype)
	for i := len(t.shape) - 1; i >= 0; i-- {
		a := obj{"type": "array", "items": s}
		if d := t.shape[i]; d >= 0 {
			a["minItems"], a["maxItems"] = d, d
		}
		s = a
	}
	s["description"] = t.datatype + " tensor " + t.name + " of shape " + oip.FormatShape(t.shape) + " (-1 is any size)"
	if example {
		shape := make([]int64, len(t.shape))
		for i, d := range t.shape {
			shape[i] = max(d, 1)
		}
		if n, err := oip.ShapeSize(shape); err == nil && n <= 256 {
			s["example"] = zeros(t.datatype, shape)
		}
	}
	return s
}

func zeros(datatype string, shape []int64) any {
	if len(shape) == 0 {
		switch datatype {
		case oip.BOOL:
			return false
		case oip.BYTES:
			return ""
		}
		return 0
	}
	a := make([]any, shape[0])
	for i := range a {
		a[i] = zeros(datatype, shape[1:])
	}
	return a
}

func elementSchema(datatype string) obj {
	switch datatype {
	case oip.FP16, oip.FP32:
		return obj{"type": "number", "format": "float"}
	case oip.FP64:
		return obj{"type": "number", "format": "double"}
	case oip.INT32:
		return obj{"type": "integer", "format": "int32"}
	case oip.INT64:
		return obj{"type": "integer", "format": "int64"}
	case oip.INT8, oip.INT16:
		return obj{"type": "integer"}
	case oip.UINT8, oip.UINT16, oip.UINT32, oip.UINT64:
		return obj{"type": "integer", "minimum": 0}
	case oip.BOOL:
		return obj{"type": "boolean"}
	}
	return obj{"type": "string"}
}
