package python

// Tests for the findings of the user audit of the Azure compatibility shims
// (py/azureml, py/inference_schema): each runs a real score.py from
// testdata/ in a real Python worker.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// trainFrameModel fits a scikit-learn regression on a DataFrame with the
// columns age (float), anaemia (bool) and time (int), saves it as
// <root>/automl_model/1/model.pkl and returns that folder (the
// AZUREML_MODEL_DIR of a single-model deployment) and the predictions for
// the rows of frameRows.
func trainFrameModel(t testing.TB) (modelDir string, want []float64) {
	t.Helper()
	modelDir = filepath.Join(t.TempDir(), "azureml-models", "automl_model", "1")
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := `
import json, sys, joblib
import pandas as pd
from sklearn.linear_model import LinearRegression
X = pd.DataFrame({"age": [50.0, 60.0, 70.0, 40.0, 65.0], "anaemia": [True, False, True, False, False],
                  "time": [4, 8, 12, 30, 100]})
y = [1.0, 2.0, 4.0, 3.0, 9.0]
m = LinearRegression().fit(X, y)
joblib.dump(m, sys.argv[1] + "/model.pkl")
rows = pd.DataFrame({"age": [55.0, 75.0], "anaemia": [True, False], "time": [7, 20]})
print(json.dumps(m.predict(rows).tolist()))
`
	out, err := exec.Command(pythonBin(t), "-c", script, modelDir).Output()
	if err != nil {
		t.Fatalf("train: %v", err)
	}
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("train output %q: %v", out, err)
	}
	return modelDir, want
}

const frameRows = `[{"age": 55.0, "anaemia": true, "time": 7}, {"age": 75, "anaemia": false, "time": 20}]`

func closeTo(got, want []float64) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		if d := got[i] - want[i]; d > 1e-9 || d < -1e-9 {
			return false
		}
	}
	return true
}

// swaggerInput returns the ServiceInput schema of the swagger 2 document.
func swaggerInput(t testing.TB, r *Runtime) map[string]any {
	t.Helper()
	doc, err := r.Swagger(context.Background(), "2")
	if err != nil {
		t.Fatal(err)
	}
	var sw struct {
		Definitions map[string]map[string]any
	}
	if err := json.Unmarshal(doc, &sw); err != nil {
		t.Fatal(err)
	}
	return sw.Definitions["ServiceInput"]
}

// dig walks nested JSON objects by key.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// Finding 1: AutoML's generated scoring_file_v_1_0_0.py imports
// azureml.automl.core and azureml.telemetry and calls log_server and
// logging_utilities at module level and in init().
func TestAuditAutoMLScoringFileV1(t *testing.T) {
	modelDir, want := trainFrameModel(t)
	r, out := start(t, Config{EntryScript: "automl_v1_score.py", SourceDir: testdata(t), ModelDir: modelDir})
	resp := mustDo(t, r, call{ct: "application/json", body: `{"data": ` + frameRows + `}`})
	s, _ := jsonBody(t, resp).(string) // run() returns json.dumps(...)
	var got struct {
		Result []float64
		Error  string
	}
	if err := json.Unmarshal([]byte(s), &got); err != nil || !closeTo(got.Result, want) {
		t.Fatalf("%d %s: want result %v", resp.Status, resp.Body, want)
	}
	if strings.Contains(out.String(), "Traceback") {
		t.Errorf("worker output has a traceback:\n%s", out.String())
	}
}

// Finding 1: AutoML's scoring_file_v_2_0_0.py (Inputs/GlobalParameters).
func TestAuditAutoMLScoringFileV2(t *testing.T) {
	modelDir, want := trainFrameModel(t)
	r, _ := start(t, Config{EntryScript: "automl_v2_score.py", SourceDir: testdata(t), ModelDir: modelDir})
	rows := `[{"age": 55.0, "anaemia": true, "time": 7, "city": "Oslo"}, {"age": 75, "anaemia": false, "time": 20, "city": "Rome"}]`
	for _, body := range []string{
		`{"Inputs": {"data": ` + rows + `}, "GlobalParameters": {"method": "predict"}}`,
		`{"Inputs": {"data": ` + rows + `}}`,
	} {
		resp := mustDo(t, r, call{ct: "application/json", body: body})
		var got struct{ Results []float64 }
		if err := json.Unmarshal(resp.Body, &got); err != nil || resp.Status != 200 || !closeTo(got.Results, want) {
			t.Errorf("%s: %d %s, want %v", body, resp.Status, resp.Body, want)
		}
	}
	resp := mustDo(t, r, call{ct: "application/json", body: `{"Inputs": {"data": ` + rows + `}, "GlobalParameters": {"method": "x"}}`})
	if resp.Status != 500 || !resp.RunFailed {
		t.Errorf("bad method: %d %s", resp.Status, resp.Body)
	}
}

// Finding 1: a model pickled with AutoML's classes cannot be loaded by the
// stand-ins; init() must fail with an error that says what is missing.
func TestAuditAutoMLPickleClearError(t *testing.T) {
	root := t.TempDir()
	modelDir := filepath.Join(root, "automl_model", "1")
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A pickle that references AutoML's model wrapper class (GLOBAL + STOP).
	pkl := "cazureml.automl.runtime.shared.model_wrappers\nPipelineWithYTransformations\n."
	if err := os.WriteFile(filepath.Join(modelDir, "model.pkl"), []byte(pkl), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New(context.Background(), Config{Python: pythonBin(t), EntryScript: "automl_v1_score.py",
		SourceDir: testdata(t), ModelDir: modelDir, Stdout: io.Discard,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var se *StartupError
	if !errors.As(err, &se) {
		t.Fatalf("err %v, want *StartupError", err)
	}
	if !strings.Contains(se.Message, "init() raised ModuleNotFoundError") ||
		!strings.Contains(se.Message, "azureml.automl.runtime") || !strings.Contains(se.Message, "azureml-automl-runtime") {
		t.Errorf("message %q", se.Message)
	}
}

// Findings 1 and 6: Microsoft's Power BI sample (unused `import
// azureml.train.automl`), and its pandas sample's str column is a string in
// the swagger, as inference-schema describes it.
func TestAuditPowerBISample(t *testing.T) {
	modelDir, rows, want := trainSklearn(t)
	r, _ := start(t, Config{EntryScript: "powerbi_score.py", SourceDir: testdata(t), ModelDir: modelDir})
	body, _ := json.Marshal(map[string]any{
		"Inputs":           map[string]any{"input1": rows, "input2": []any{map[string]any{"name": "Ann", "age": 30}}, "input3": 1.5},
		"GlobalParameters": 1.0,
	})
	resp := mustDo(t, r, call{ct: "application/json", body: string(body)})
	var got []float64
	if err := json.Unmarshal(resp.Body, &got); err != nil || !closeTo(got, want) {
		t.Fatalf("%d %s, want %v", resp.Status, resp.Body, want)
	}
	in := swaggerInput(t, r)
	cols := dig(in, "properties", "Inputs", "properties", "input2", "items", "properties")
	if typ := dig(cols, "name", "type"); typ != "string" {
		t.Errorf("str column name: type %v, want string (columns %v)", typ, cols)
	}
	if typ := dig(cols, "age", "type"); typ != "integer" {
		t.Errorf("int column age: type %v, want integer", typ)
	}
}

// Finding 6, for a generated v2 scoring file: its object column with str
// sample values is typed string.
func TestAuditSwaggerPandasStringColumn(t *testing.T) {
	modelDir, _ := trainFrameModel(t)
	r, _ := start(t, Config{EntryScript: "automl_v2_score.py", SourceDir: testdata(t), ModelDir: modelDir})
	cols := dig(swaggerInput(t, r), "properties", "Inputs", "properties", "data", "items", "properties")
	want := map[string]string{"city": "string", "age": "number", "anaemia": "boolean", "time": "integer"}
	for c, typ := range want {
		if got := dig(cols, c, "type"); got != typ {
			t.Errorf("column %s: type %v, want %s", c, got, typ)
		}
	}
}

// Finding 2: azureml.core exports and modules that deployment code imports.
func TestAuditCoreStubs(t *testing.T) {
	r, _ := start(t, Config{EntryScript: "core_stubs_score.py", SourceDir: testdata(t)})
	resp := mustDo(t, r, call{body: "x"})
	if resp.Status != 200 {
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
	got := jsonBody(t, resp).(map[string]any)
	if got["same_webservice"] != true || got["aci_is_webservice"] != true || got["sp_tenant"] != "t" ||
		got["environment"] != "env" {
		t.Errorf("got %v", got)
	}
	for _, k := range []string{"auth_header", "cli", "msi", "interactive", "workspace", "dataset", "dataset_tabular",
		"tabular_factory", "tabular_dataset", "file_dataset", "datastore", "compute", "aml_compute", "webservice"} {
		if s, _ := got[k].(string); !strings.HasPrefix(s, "NotAvailableInModelship: ") || !strings.Contains(s, "not available in modelship") {
			t.Errorf("%s: %v", k, got[k])
		}
	}
	if !reflect.DeepEqual(got["conda_pip"], []any{"azureml-defaults", "inference-schema[numpy-support]", "joblib"}) ||
		!reflect.DeepEqual(got["conda_packages"], []any{"numpy", "scikit-learn==1.2.1"}) {
		t.Errorf("conda packages %v %v", got["conda_pip"], got["conda_packages"])
	}
	yml, _ := got["conda_yaml"].(string)
	for _, s := range []string{"name: project_environment", "- python=3.8", "- scikit-learn==1.2.1", "- numpy",
		"- pip:", "  - azureml-defaults", "  - inference-schema[numpy-support]", "  - joblib", "channels:", "- anaconda"} {
		if !strings.Contains(yml, s+"\n") {
			t.Errorf("conda yaml lacks %q:\n%s", s, yml)
		}
	}
	// The YAML is what conda reads back.
	check := `
import sys, yaml
d = yaml.safe_load(sys.stdin.read())
deps = d["dependencies"]
pip = [x for x in deps if isinstance(x, dict)][0]["pip"]
assert d["name"] == "project_environment", d
assert "python=3.8" in deps and "numpy" in deps and "joblib" in pip, d
`
	cmd := exec.Command(pythonBin(t), "-c", check)
	cmd.Stdin = strings.NewReader(yml)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("yaml does not parse as a conda file: %v\n%s\n%s", err, out, yml)
	}
}

// Finding 3: PandasParameterType decodes each orient as the inference-schema
// package does: sample column names only with apply_column_names=True, and
// dtypes by column name (others become object).
func TestAuditPandasOrients(t *testing.T) {
	r, _ := start(t, Config{EntryScript: "pandas_orients_score.py", SourceDir: testdata(t)})
	type frame struct {
		Columns []string
		Dtypes  []string
		Rows    [][]string
	}
	tests := []struct {
		name, input string
		want        frame
	}{
		{"records", `[{"a": 1, "b": 2, "s": "hello"}]`,
			frame{[]string{"a", "b", "s"}, []string{"int64", "float64", "object"}, [][]string{{"1", "2.0", "'hello'"}}}},
		{"values", `[[7, 8.5, "z"]]`,
			frame{[]string{"0", "1", "2"}, []string{"object", "object", "object"}, [][]string{{"7", "8.5", "'z'"}}}},
		{"values_named", `[[7, 8.5, "z"]]`,
			frame{[]string{"a", "b", "s"}, []string{"int64", "float64", "object"}, [][]string{{"7", "8.5", "'z'"}}}},
		{"untyped", `[[7, 8.5, "z"]]`,
			frame{[]string{"0", "1", "2"}, []string{"int64", "float64", "object"}, [][]string{{"7", "8.5", "'z'"}}}},
		{"split", `{"columns": ["s", "b", "a"], "index": [0], "data": [["q", 1, 2]]}`,
			frame{[]string{"s", "b", "a"}, []string{"object", "float64", "int64"}, [][]string{{"'q'", "1.0", "2"}}}},
		{"columns", `{"a": {"0": 3}, "b": {"0": 1.5}, "s": {"0": "w"}}`,
			frame{[]string{"a", "b", "s"}, []string{"int64", "float64", "object"}, [][]string{{"3", "1.5", "'w'"}}}},
		{"index", `{"r1": {"a": 4, "b": 2.5, "s": "v"}}`,
			frame{[]string{"a", "b", "s"}, []string{"int64", "float64", "object"}, [][]string{{"4", "2.5", "'v'"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := mustDo(t, r, call{ct: "application/json", body: `{"` + tt.name + `": ` + tt.input + `}`})
			var got map[string]frame
			if err := json.Unmarshal(resp.Body, &got); err != nil || resp.Status != 200 {
				t.Fatalf("%d %s", resp.Status, resp.Body)
			}
			if !reflect.DeepEqual(got[tt.name], tt.want) {
				t.Errorf("got %+v\nwant %+v", got[tt.name], tt.want)
			}
		})
	}
	// Wrong column count: apply_column_names cannot name them, and the shape is enforced.
	for _, name := range []string{"values", "values_named"} {
		resp := mustDo(t, r, call{ct: "application/json", body: `{"` + name + `": [[1, 2]]}`})
		if resp.Status != 500 || !resp.RunFailed {
			t.Errorf("%s with 2 columns: %d %s", name, resp.Status, resp.Body)
		}
	}
}

// Finding 4: a structured dtype with a sub-array field starts (its swagger
// example is JSON) and requests of that shape are decoded.
func TestAuditNumpySubarray(t *testing.T) {
	r, _ := start(t, Config{EntryScript: "numpy_subarray_score.py", SourceDir: testdata(t)})
	want := `{"dtype": "[('name', '<U16'), ('grades', '<f8', (2,))]", "shape": [2], "names": ["Ann", "Bob"], ` +
		`"grades": [[8.0, 7.0], [1.0, 3.0]], "mean": [7.5, 2.0]}`
	for _, body := range []string{
		`{"data": [["Ann", [8.0, 7.0]], ["Bob", [1, 3]]]}`,
		`{"data": [{"name": "Ann", "grades": [8.0, 7.0]}, {"name": "Bob", "grades": [1, 3]}]}`,
	} {
		resp := mustDo(t, r, call{ct: "application/json", body: body})
		if resp.Status != 200 || string(resp.Body) != want {
			t.Errorf("%s: %d %s\nwant %s", body, resp.Status, resp.Body, want)
		}
	}
	resp := mustDo(t, r, call{ct: "application/json", body: `{"data": [["Ann", [8.0, 7.0, 1.0]]]}`})
	if resp.Status != 500 {
		t.Errorf("sub-array of the wrong length: %d %s", resp.Status, resp.Body)
	}
	data := dig(swaggerInput(t, r), "properties", "data")
	wantSchema := map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
		"name":   map[string]any{"type": "string"},
		"grades": map[string]any{"type": "array", "items": map[string]any{"type": "number", "format": "double"}},
	}}}
	example := []any{map[string]any{"name": "Sarah", "grades": []any{8.0, 7.0}}, map[string]any{"name": "John", "grades": []any{6.0, 7.0}}}
	if !reflect.DeepEqual(dig(swaggerInput(t, r), "example", "data"), example) {
		t.Errorf("example %v", dig(swaggerInput(t, r), "example", "data"))
	}
	if !reflect.DeepEqual(data, wantSchema) {
		t.Errorf("schema %v", data)
	}
}

// Finding 5: predictions, labels and signals collected in a request carry
// the correlation id of the request's last "inputs" collect; a new request
// never reuses an earlier request's id.
func TestAuditCollectCorrelation(t *testing.T) {
	var mu sync.Mutex
	var recs []CollectRecord
	r, _ := start(t, Config{EntryScript: "collect_corr_score.py", SourceDir: testdata(t),
		Env:     map[string]string{"AML_MODEL_DC_STORAGE_ENABLED": "true"},
		Collect: func(rec CollectRecord) { mu.Lock(); recs = append(recs, rec); mu.Unlock() }})
	score := func(body string) ([]string, []CollectRecord) {
		t.Helper()
		mu.Lock()
		n := len(recs)
		mu.Unlock()
		resp := mustDo(t, r, call{body: body})
		var ids []string
		if err := json.Unmarshal(resp.Body, &ids); err != nil || resp.Status != 200 {
			t.Fatalf("%s: %d %s", body, resp.Status, resp.Body)
		}
		want := len(strings.Split(body, ","))
		waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(recs) == n+want })
		mu.Lock()
		defer mu.Unlock()
		got := append([]CollectRecord(nil), recs[n:]...)
		for i, rec := range got {
			if rec.CorrelationID != ids[i] {
				t.Errorf("%s: record %d (%s) has correlation %q, collect() returned %q", body, i, rec.Designation, rec.CorrelationID, ids[i])
			}
		}
		return ids, got
	}

	ids, got := score("inputs,predictions,labels,signals,general")
	first := ids[0]
	if ids[1] != first || ids[2] != first || ids[3] != first {
		t.Errorf("predictions/labels/signals ids %v, want the inputs id %s", ids[1:4], first)
	}
	if ids[4] == first {
		t.Errorf("general reused the inputs id")
	}
	if got[0].Designation != "inputs" || got[1].Designation != "predictions" {
		t.Errorf("designations %+v", got)
	}

	ids, _ = score("inputs,inputs,predictions")
	if ids[0] == ids[1] || ids[2] != ids[1] || ids[0] == first {
		t.Errorf("two inputs then predictions: %v (previous request %s)", ids, first)
	}
	last := ids[1]

	ids, _ = score("predictions,labels")
	if ids[0] == last || ids[0] == first || ids[1] == last || ids[0] == ids[1] {
		t.Errorf("a request without inputs reused an id: %v (earlier %s, %s)", ids, first, last)
	}
}
