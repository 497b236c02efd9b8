package e2e

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dcScore uses ModelDataCollector the way Azure's samples do, and echoes
// the traceparent it receives through request_headers.
const dcScore = `import json
from azureml.monitoring import ModelDataCollector

def init():
    global inputs_dc, prediction_dc
    inputs_dc = ModelDataCollector("best_model", designation="inputs", feature_names=["feat1", "feat2", "feat3"])
    prediction_dc = ModelDataCollector("best_model", designation="predictions", feature_names=["prediction"])

def run(raw, request_headers):
    data = json.loads(raw)["data"]
    result = [sum(r) for r in data]
    inputs_dc.collect(data)
    prediction_dc.collect(result)
    return {"result": result, "traceparent": request_headers.get("Traceparent", "")}
`

// TestModelDataCollectionAndTelemetry deploys a score.py that collects
// its inputs and predictions with data collection, App Insights and
// request collection on, scores through the front end, stops the server
// gracefully, and checks the CSV files, the telemetry records and the
// request log.
func TestModelDataCollectionAndTelemetry(t *testing.T) {
	needPython(t)
	s := startServer(t, "")
	dir := t.TempDir()
	registerDummy(t, s, dir)
	project(t, dir, dcScore, `{"computeType": "aks", "numReplicas": 1, "containerResourceRequirements": {"cpu": 0.1, "memoryInGB": 0.5},
		"dataCollection": {"storageEnabled": true}, "appInsightsEnabled": true}`)
	ic := fmt.Sprintf(`{"entryScript": "score.py", "sourceDirectory": "src", "environment": {"python": {"interpreterPath": %q},
		"environmentVariables": {"MODELSHIP_COLLECT_REQUESTS": "true", "MODELSHIP_SAMPLING_RATE": "1"}}}`, systemPython)
	writeFile(t, filepath.Join(dir, "ic.json"), []byte(ic))
	s.deploy(t, dir, "dcsvc")
	key := s.keys(t, "dcsvc").PrimaryKey

	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var ids []string
	for i := range 3 {
		body := fmt.Sprintf(`{"data": [[%d, 2, 3], [4, 5, 6]]}`, i)
		req, _ := http.NewRequest("POST", s.gateway+"/api/v1/service/dcsvc/score", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("x-ms-client-request-id", fmt.Sprint("client-", i))
		req.Header.Set("traceparent", tp)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Result      []int  `json:"result"`
			TraceParent string `json:"traceparent"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(out.Result) != 2 || out.Result[1] != 15 {
			t.Fatalf("score: %d %+v\n%s", resp.StatusCode, out, s.log)
		}
		if out.TraceParent != tp {
			t.Errorf("run() saw traceparent %q, want %q", out.TraceParent, tp)
		}
		ids = append(ids, resp.Header.Get("x-request-id"))
	}
	// A graceful stop drains the replica, which flushes what it collected.
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	// Model data: inputs and predictions in Azure's layout.
	for _, c := range []struct {
		designation string
		header      []string
		rows        int
	}{
		{"inputs", []string{"feat1", "feat2", "feat3"}, 6},
		{"predictions", []string{"prediction"}, 6},
	} {
		paths, _ := filepath.Glob(filepath.Join(s.dataDir, "modeldata", "*", "dcsvc", "best_model", "*", c.designation, "*", "*", "*", "data.csv"))
		if len(paths) != 1 {
			t.Fatalf("%s: data.csv files %v\n%s", c.designation, paths, s.log)
		}
		f, err := os.Open(paths[0])
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", paths[0], err)
		}
		want := append(c.header, "$aml_dc_correlation_id", "$aml_dc_scoring_timestamp", "$aml_dc_boundary", "$aml_workspace",
			"$aml_service_name", "$aml_model_name", "$aml_model_version", "$aml_request_id")
		if !slices.Equal(rows[0], want) || len(rows) != 1+c.rows {
			t.Fatalf("%s: header %q, %d rows", paths[0], rows[0], len(rows)-1)
		}
		t.Logf("%s: %q", c.designation, rows[1])
		seen := map[string]int{}
		for _, r := range rows[1:] {
			if len(r) != len(want) || r[len(r)-4] != "dcsvc" || r[len(r)-3] != "best_model" {
				t.Fatalf("%s: row %q", c.designation, r)
			}
			seen[r[len(r)-1]]++
		}
		for _, id := range ids {
			if seen[id] != 2 {
				t.Errorf("%s: request %s has %d rows, want 2 (%v)", c.designation, id, seen[id], seen)
			}
		}
		if c.designation == "inputs" && (rows[1][0] != "0" || rows[2][0] != "4") {
			t.Errorf("inputs rows: %q", rows[1:3])
		}
	}

	// Telemetry: one record per scoring request, with payloads.
	tel, _ := filepath.Glob(filepath.Join(s.dataDir, "telemetry", "*", "dcsvc", "requests-*.jsonl"))
	if len(tel) == 0 {
		t.Fatalf("no telemetry files\n%s", s.log)
	}
	records := map[string]map[string]any{}
	for _, p := range tel {
		b, _ := os.ReadFile(p)
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r map[string]any
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("%s: %v: %q", p, err, l)
			}
			if r["name"] == "/score" {
				records[fmt.Sprint(r["requestId"])] = r
			}
		}
	}
	t.Logf("telemetry: %v", records[ids[0]])
	for i, id := range ids {
		r := records[id]
		if r == nil {
			t.Fatalf("no telemetry record for %s: %v", id, records)
		}
		if r["clientRequestId"] != fmt.Sprint("client-", i) || r["serviceName"] != "dcsvc" || fmt.Sprint(r["models"]) != "[m:1]" ||
			r["resultCode"] != 200.0 || r["traceparent"] != tp ||
			r["input"] == nil || r["prediction"] == nil || r["containerId"] == "" {
			t.Errorf("telemetry record %v", r)
		}
	}

	// Request/response collection: one line per request, hourly files.
	reqs, _ := filepath.Glob(filepath.Join(s.dataDir, "modeldata", "*", "dcsvc", "_requests", "*", "*", "*", "*.jsonl"))
	var lines []string
	for _, p := range reqs {
		b, _ := os.ReadFile(p)
		lines = append(lines, strings.Split(strings.TrimSpace(string(b)), "\n")...)
	}
	t.Logf("request log: %s", lines[0])
	if len(lines) != len(ids) {
		t.Fatalf("request log lines %d, want %d: %v", len(lines), len(ids), reqs)
	}
	for _, id := range ids {
		found := false
		for _, l := range lines {
			found = found || strings.Contains(l, `"requestId":"`+id+`"`) && strings.Contains(l, `"response":{"result":[`)
		}
		if !found {
			t.Errorf("request %s not in the request log:\n%s", id, strings.Join(lines, "\n"))
		}
	}

	// The same rows through the API and CLI, after a restart.
	s2 := startServer(t, s.dataDir)
	out := s2.ok(t, "service", "collected-data", "dcsvc", "--designation", "inputs", "--since", "1h")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[0], "feat1,feat2,feat3,$aml_dc_correlation_id") {
		t.Fatalf("collected-data inputs:\n%s", out)
	}
	if out := s2.ok(t, "service", "collected-data", "dcsvc", "--designation", "inputs", "--since", "2999-01-01T00:00:00Z"); strings.TrimSpace(out) != "" {
		t.Fatalf("rows from the future: %q", out)
	}
	s2.fails(t, "designation", "service", "collected-data", "dcsvc", "--designation", "nope")
	s2.fails(t, "since", "service", "collected-data", "dcsvc", "--designation", "inputs", "--since", "yesterday")
}
