package httpapi

import (
	"net/http"
	"regexp"
	"strings"
)

var pathParamRE = regexp.MustCompile(`\{([a-z]+)\}`)

// paramDocs describes the path parameters used by the routes.
var paramDocs = map[string]string{
	"ws":      "Workspace name",
	"name":    "Model name",
	"version": "Model version (a whole number from 1)",
	"svc":     "Service name",
	"id":      "Operation id",
	"target":  "Compute target name",
	"ep":      "Endpoint name",
	"dep":     "Deployment: a service name, or <endpoint>.<version>",
	"sha256":  "sha256 of the file",
}

// OpenAPI returns the OpenAPI 3 document of the API, built from the route
// table so that every route is described.
func (s *Server) OpenAPI() map[string]any {
	if s.mux == nil {
		s.init()
	}
	paths := map[string]any{}
	for _, rt := range s.routes {
		item, _ := paths[rt.pattern].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.pattern] = item
		}
		op := map[string]any{
			"summary":     rt.summary,
			"tags":        []string{rt.tag},
			"operationId": operationID(rt.method, rt.pattern),
			"responses":   responsesFor(rt),
		}
		var params []any
		for _, m := range pathParamRE.FindAllStringSubmatch(rt.pattern, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true,
				"description": paramDocs[m[1]], "schema": map[string]any{"type": "string"}})
		}
		params = append(params, queryParams(rt)...)
		if len(params) > 0 {
			op["parameters"] = params
		}
		if body := requestBody(rt); body != nil {
			op["requestBody"] = body
		}
		if rt.public {
			op["security"] = []any{}
		}
		item[strings.ToLower(rt.method)] = op
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "modelship control-plane API", "version": s.Version,
			"description": "Every call except /healthz needs Authorization: Bearer <admin token>. Errors are {\"error\":{\"code\",\"message\"}}."},
		"paths":    paths,
		"security": []any{map[string]any{"bearer": []string{}}},
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
			"schemas":         schemas,
		},
	}
}

func operationID(method, pattern string) string {
	parts := []string{strings.ToLower(method)}
	for _, p := range strings.Split(strings.Trim(pattern, "/"), "/") {
		p = strings.Trim(p, "{}")
		p = strings.ReplaceAll(p, ".", "_")
		if p != "" && p != "api" && p != "v1" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "_")
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func jsonContent(schema any) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": schema}}
}

func responsesFor(rt route) map[string]any {
	errResp := map[string]any{"description": "Error", "content": jsonContent(ref("Error"))}
	out := map[string]any{"default": errResp}
	if !rt.public {
		out["401"] = map[string]any{"description": "Missing or invalid token", "content": jsonContent(ref("Error"))}
	}
	ok := map[string]any{"description": "OK"}
	switch {
	case rt.out == "Blob":
		ok["content"] = map[string]any{ContentTypeFile: map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}
	case rt.out == "CSV":
		ok["content"] = map[string]any{"text/csv": map[string]any{"schema": map[string]any{"type": "string"}}}
	case strings.HasPrefix(rt.out, "[]"):
		ok["content"] = jsonContent(map[string]any{"type": "array", "items": ref(rt.out[2:])})
	case rt.out != "":
		ok["content"] = jsonContent(ref(rt.out))
	case strings.HasSuffix(rt.pattern, "/content"):
		ok["content"] = map[string]any{
			ContentTypeFile: map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}},
			ContentTypeTar:  map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}},
		}
	case strings.Contains(rt.pattern, "/models") && (rt.method == "GET" && (strings.HasSuffix(rt.pattern, "/models") || strings.HasSuffix(rt.pattern, "/versions"))):
		ok["content"] = jsonContent(map[string]any{"type": "array", "items": ref("ModelVersion")})
	case strings.Contains(rt.pattern, "/models/"):
		ok["content"] = jsonContent(ref("ModelVersion"))
	case rt.pattern == "/api/v1/workspaces" && rt.method == "GET":
		ok["content"] = jsonContent(map[string]any{"type": "array", "items": ref("Workspace")})
	case strings.HasPrefix(rt.pattern, "/api/v1/workspaces"):
		ok["content"] = jsonContent(ref("Workspace"))
	default:
		ok["content"] = jsonContent(map[string]any{"type": "object"})
	}
	switch {
	case rt.out == "DeployResponse":
		out["202"] = ok
	case rt.method == "DELETE" && rt.out == "":
		out["204"] = map[string]any{"description": "Deleted"}
	case rt.method == "POST" && (rt.out == "" || rt.out == "Source" || rt.out == "CreateTargetResponse" || rt.tag == "workspaces" || rt.tag == "models"):
		out["201"] = ok
	default:
		out["200"] = ok
	}
	return out
}

func queryParams(rt route) []any {
	q := func(name, desc string, repeated bool) any {
		schema := map[string]any{"type": "string"}
		if repeated {
			schema = map[string]any{"type": "array", "items": map[string]any{"type": "string"}}
		}
		return map[string]any{"name": name, "in": "query", "description": desc, "schema": schema}
	}
	switch {
	case strings.HasSuffix(rt.pattern, "/collected-data"):
		return []any{q("designation", "inputs, predictions, labels, signals or general (required)", false), q("model", "only this model", false),
			q("since", "RFC 3339 time or a duration such as 1h (default: everything)", false)}
	case rt.method == "GET" && strings.HasSuffix(rt.pattern, "/models"):
		return []any{q("name", "Only this model name", false), q("tag", "key or key=value; repeatable, all must match", true)}
	case rt.method == "POST" && strings.HasSuffix(rt.pattern, "/versions"):
		return []any{q("fileName", "Name of the registered file (file models)", false), q("description", "Description", false),
			q("modelFramework", "Onnx, ScikitLearn, TensorFlow, PyTorch, Custom or Multi", false), q("modelFrameworkVersion", "Framework version", false),
			q("tag", "key=value; repeatable", true), q("property", "key=value; repeatable", true),
			q("sha256", "Expected sha256 of the body (or send it in the X-Content-Sha256 trailer)", false)}
	}
	return nil
}

func requestBody(rt route) map[string]any {
	switch {
	case rt.method == "POST" && rt.pattern == "/api/v1/workspaces":
		return map[string]any{"required": true, "content": jsonContent(ref("Workspace"))}
	case rt.method == "POST" && strings.HasSuffix(rt.pattern, "/versions"):
		bin := map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
		return map[string]any{"required": true, "content": map[string]any{ContentTypeFile: bin, ContentTypeTar: bin}}
	case rt.method == "POST" && strings.HasSuffix(rt.pattern, "/endpoints"):
		return map[string]any{"required": true, "content": jsonContent(ref("EndpointCreateRequest"))}
	case (rt.method == "POST" || rt.method == "PATCH") && strings.Contains(rt.pattern, "/versions") && rt.tag == "endpoints" && !strings.HasSuffix(rt.pattern, "/promote"):
		return map[string]any{"required": true, "content": jsonContent(ref("VersionRequest"))}
	case rt.method == "PATCH" && rt.tag == "endpoints":
		return map[string]any{"required": true, "content": jsonContent(ref("EndpointUpdateRequest"))}
	case rt.method == "PATCH" && rt.tag == "models":
		return map[string]any{"required": true, "content": jsonContent(ref("ModelUpdate"))}
	case rt.method == "PATCH":
		return map[string]any{"required": true, "content": jsonContent(ref("UpdateRequest"))}
	case rt.method == "POST" && strings.HasSuffix(rt.pattern, "/services"):
		return map[string]any{"required": true, "content": jsonContent(ref("DeployRequest"))}
	case rt.method == "POST" && strings.HasSuffix(rt.pattern, "/regenerateKeys"):
		return map[string]any{"required": true, "content": jsonContent(ref("RegenKeyRequest"))}
	case rt.method == "POST" && strings.HasSuffix(rt.pattern, "/computetargets/attach"):
		return map[string]any{"required": true, "content": jsonContent(ref("AttachRequest"))}
	case rt.method == "POST" && strings.HasSuffix(rt.pattern, "/computetargets"):
		return map[string]any{"required": true, "content": jsonContent(ref("CreateTargetRequest"))}
	case rt.method == "POST" && strings.HasSuffix(rt.pattern, "/sources"):
		bin := map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
		return map[string]any{"required": true, "content": map[string]any{ContentTypeTar: bin}}
	}
	return nil
}

var str = map[string]any{"type": "string"}
var strMap = map[string]any{"type": "object", "additionalProperties": str}

var schemas = map[string]any{
	"Error": map[string]any{"type": "object", "properties": map[string]any{"error": map[string]any{"type": "object",
		"properties": map[string]any{"code": str, "message": str}}}},
	"Workspace": map[string]any{"type": "object", "required": []string{"name"}, "properties": map[string]any{
		"name": str, "description": str, "createdTime": map[string]any{"type": "string", "format": "date-time"}}},
	"ModelVersion": map[string]any{"type": "object", "properties": map[string]any{
		"workspace": str, "name": str, "version": map[string]any{"type": "integer"}, "tags": strMap, "properties": strMap,
		"description": str, "modelFramework": str, "modelFrameworkVersion": str,
		"assetType": map[string]any{"type": "string", "enum": []string{"file", "folder"}}, "fileName": str,
		"fileCount": map[string]any{"type": "integer"}, "sizeBytes": map[string]any{"type": "integer", "format": "int64"},
		"sha256": str, "createdTime": map[string]any{"type": "string", "format": "date-time"}}},
	"Source":                obj("sha256"),
	"FetchAccess":           obj("url", "deployment", "token", "expiryOn"),
	"FetchManifest":         obj("workspace", "deployment", "models", "source", "entryScript", "runtime", "settings"),
	"Service":               obj("workspace", "name", "state", "scoringUri", "swaggerUri", "computeType", "computeTarget", "models", "error", "settings", "inference", "replicas", "generation", "createdTime", "updatedTime"),
	"DeployResponse":        obj("service", "operationId"),
	"DeployRequest":         obj("name", "computeTarget", "models", "inference", "deploymentConfig", "overwrite"),
	"UpdateRequest":         obj("models", "inference", "deploymentConfig"),
	"ServiceKeys":           obj("primaryKey", "secondaryKey"),
	"RegenKeyRequest":       obj("keyType", "keyValue"),
	"AccessToken":           obj("accessToken", "tokenType", "refreshAfter", "expiryOn"),
	"Logs":                  obj("lines"),
	"Operation":             obj("id", "workspace", "target", "kind", "state", "error", "log", "createdTime", "endTime"),
	"ComputeTarget":         obj("workspace", "name", "computeType", "clusterPurpose", "cpu", "memoryGB", "gpus", "freeCpu", "freeMemoryGB", "freeGpus", "services", "provisioningState"),
	"CreateTargetRequest":   obj("name", "computeType", "clusterPurpose", "cpu", "memoryGB", "gpus", "description"),
	"CreateTargetResponse":  obj("computeTarget", "warnings"),
	"AttachRequest":         obj("name", "kubeconfig", "context", "namespace", "clusterPurpose", "image", "imagePullPolicy", "frontEndService", "description"),
	"Endpoint":              obj("workspace", "name", "computeType", "computeTarget", "authMode", "state", "error", "scoringUri", "swaggerUri", "versions", "comparisons"),
	"EndpointResponse":      obj("endpoint", "operationId"),
	"EndpointCreateRequest": obj("name", "computeTarget", "version", "deploymentConfig"),
	"VersionRequest":        obj("versionName", "models", "inference", "deploymentConfig", "trafficPercentile", "mirrorPercentile", "isDefault", "isControlVersionType"),
	"EndpointUpdateRequest": obj("authEnabled", "tokenAuthEnabled", "appInsightsEnabled", "description", "tags", "properties"),
	"ModelUpdate": map[string]any{"type": "object", "properties": map[string]any{
		"addTags": strMap, "removeTags": map[string]any{"type": "array", "items": str}, "addProperties": strMap, "description": str}},
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.OpenAPI())
}

// obj is a loose object schema listing its properties.
func obj(props ...string) map[string]any {
	p := map[string]any{}
	for _, name := range props {
		p[name] = map[string]any{}
	}
	return map[string]any{"type": "object", "properties": p}
}
