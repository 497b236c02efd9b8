package python

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// normalizeSwaggerVersion maps the accepted ?version= values to "2", "3"
// or "3.1"; anything else yields "".
func normalizeSwaggerVersion(v string) string {
	switch v {
	case "", "2", "2.0":
		return "2"
	case "3", "3.0":
		return "3"
	case "3.1":
		return "3.1"
	}
	return ""
}

// buildSwagger prepares the documents: a user's swagger file when present
// (spec §2.4), else the template filled with the decorator schemas.
func (r *Runtime) buildSwagger() map[string][]byte {
	out := map[string][]byte{}
	files := map[string][]string{
		"2":   {"swagger2.json", "swagger.json"},
		"3":   {"swagger3.json", "swagger.json"},
		"3.1": {"swagger3.json", "swagger.json"},
	}
	dirs := []string{r.cfg.appRoot}
	if r.cfg.sourceDir != r.cfg.appRoot {
		dirs = append(dirs, r.cfg.sourceDir)
	}
	for v, names := range files {
	search:
		for _, d := range dirs {
			for _, n := range names {
				if b, err := os.ReadFile(filepath.Join(d, n)); err == nil {
					out[v] = b
					break search
				}
			}
		}
		if out[v] == nil {
			out[v] = r.swaggerTemplate(v)
		}
	}
	return out
}

// schemaOrEmpty returns a decorator schema or the empty-object schema.
func schemaOrEmpty(raw json.RawMessage) any {
	if len(raw) == 0 || string(raw) == "null" || string(raw) == "{}" {
		return map[string]any{"type": "object", "example": map[string]any{}}
	}
	return raw
}

func (r *Runtime) swaggerTemplate(version string) []byte {
	prefix := r.cfg.Env["SERVICE_PATH_PREFIX"]
	if prefix != "" && prefix[0] != '/' {
		prefix = "/" + prefix
	}
	name := orDefault(r.cfg.ServiceName, "ML service")
	info := map[string]any{
		"title":       name,
		"description": "API specification for the Azure Machine Learning service " + name,
		"version":     orDefault(r.cfg.ServiceVersion, "1.0"),
	}
	errResp := map[string]any{"type": "object", "properties": map[string]any{"message": map[string]any{"type": "string"}}}
	in, outSchema := schemaOrEmpty(r.info.in), schemaOrEmpty(r.info.out)
	var doc map[string]any
	if version == "2" {
		ref := func(n string) map[string]any { return map[string]any{"$ref": "#/definitions/" + n} }
		def := map[string]any{"description": "The service failed to execute due to an error.", "schema": ref("ErrorResponse")}
		doc = map[string]any{
			"swagger":  "2.0",
			"info":     info,
			"schemes":  []string{"https"},
			"consumes": []string{"application/json"},
			"produces": []string{"application/json"},
			"securityDefinitions": map[string]any{"Bearer": map[string]any{
				"type": "apiKey", "name": "Authorization", "in": "header",
				"description": "For example: Bearer abc123"}},
			"paths": map[string]any{
				prefix + "/": map[string]any{"get": map[string]any{
					"operationId": "ServiceHealthCheck",
					"description": "Simple health check endpoint to ensure the service is up at any given point.",
					"responses": map[string]any{
						"200": map[string]any{
							"description": "If service is up and running, this response will be returned with the content 'Healthy'",
							"schema":      map[string]any{"type": "string"},
							"examples":    map[string]any{"application/json": "Healthy"}},
						"default": def}}},
				prefix + "/score": map[string]any{"post": map[string]any{
					"operationId": "RunMLService",
					"description": "Run web service's model and get the prediction output",
					"security":    []any{map[string]any{"Bearer": []string{}}},
					"parameters": []any{map[string]any{
						"name": "serviceInputPayload", "in": "body",
						"description": "The input payload for executing the real-time machine learning service.",
						"schema":      ref("ServiceInput")}},
					"responses": map[string]any{
						"200": map[string]any{
							"description": "The service processed the input correctly and provided a result prediction, if applicable.",
							"schema":      ref("ServiceOutput")},
						"default": def}}},
				prefix + "/swagger.json": map[string]any{"get": map[string]any{
					"operationId": "GetSwaggerSpec",
					"description": "Get the Swagger specification.",
					"parameters": []any{map[string]any{"name": "version", "in": "query", "required": false,
						"type": "integer", "enum": []int{2, 3}}},
					"responses": map[string]any{
						"200":     map[string]any{"description": "The Swagger specification.", "schema": map[string]any{"type": "string"}},
						"default": def}}},
			},
			"definitions": map[string]any{"ServiceInput": in, "ServiceOutput": outSchema, "ErrorResponse": errResp},
		}
	} else {
		ref := func(n string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + n} }
		jsonOf := func(s any) map[string]any {
			return map[string]any{"application/json": map[string]any{"schema": s}}
		}
		def := map[string]any{"description": "The service failed to execute due to an error.", "content": jsonOf(ref("ErrorResponse"))}
		openapi := "3.0.1"
		if version == "3.1" {
			openapi = "3.1.0"
		}
		doc = map[string]any{
			"openapi": openapi,
			"info":    info,
			"servers": []any{map[string]any{"url": "/"}},
			"paths": map[string]any{
				prefix + "/": map[string]any{"get": map[string]any{
					"operationId": "ServiceHealthCheck",
					"description": "Simple health check endpoint to ensure the service is up at any given point.",
					"responses": map[string]any{
						"200": map[string]any{
							"description": "If service is up and running, this response will be returned with the content 'Healthy'",
							"content": map[string]any{"text/plain": map[string]any{
								"schema": map[string]any{"type": "string"}, "example": "Healthy"}}},
						"default": def}}},
				prefix + "/score": map[string]any{"post": map[string]any{
					"operationId": "RunMLService",
					"description": "Run web service's model and get the prediction output",
					"security":    []any{map[string]any{"Bearer": []string{}}},
					"requestBody": map[string]any{
						"description": "The input payload for executing the real-time machine learning service.",
						"content":     jsonOf(ref("ServiceInput"))},
					"responses": map[string]any{
						"200": map[string]any{
							"description": "The service processed the input correctly and provided a result prediction, if applicable.",
							"content":     jsonOf(ref("ServiceOutput"))},
						"default": def}}},
				prefix + "/swagger.json": map[string]any{"get": map[string]any{
					"operationId": "GetSwaggerSpec",
					"description": "Get the Swagger specification.",
					"parameters": []any{map[string]any{"name": "version", "in": "query", "required": false,
						"schema": map[string]any{"type": "string", "enum": []string{"2", "3"}}}},
					"responses": map[string]any{
						"200":     map[string]any{"description": "The Swagger specification.", "content": jsonOf(map[string]any{"type": "string"})},
						"default": def}}},
			},
			"components": map[string]any{
				"securitySchemes": map[string]any{"Bearer": map[string]any{
					"type": "apiKey", "name": "Authorization", "in": "header",
					"description": "For example: Bearer abc123"}},
				"schemas": map[string]any{"ServiceInput": in, "ServiceOutput": outSchema, "ErrorResponse": errResp},
			},
		}
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		// The document is built from valid JSON pieces; this cannot fail.
		panic(err)
	}
	return b
}
