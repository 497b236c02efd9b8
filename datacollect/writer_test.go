package datacollect

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelship/modelship/modelserver"
)

var day = time.Date(2024, 3, 9, 17, 4, 5, 123456789, time.UTC)

func newWriter(t *testing.T, cfg Config) *Writer {
	t.Helper()
	if cfg.Root == "" {
		cfg.Root = t.TempDir()
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

func closeWriter(t *testing.T, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

func TestLayoutHeaderAndColumns(t *testing.T) {
	tests := []struct {
		name     string
		rec      Record
		wantPath string
		header   []string
		rows     [][]string
	}{
		{
			name: "inputs with feature names",
			rec: Record{Time: day, RequestID: "req-1", CorrelationID: "corr-1", Model: "best_model", ModelVersion: "3",
				Designation: "inputs", FeatureNames: []string{"feat1", "feat2", "feat3"}, Rows: json.RawMessage(`[[1, 2.5, "a,b"], [4, null, true]]`)},
			wantPath: "ws/svc/best_model/3/inputs/2024/03/09/data.csv",
			header:   []string{"feat1", "feat2", "feat3"},
			rows: [][]string{
				{"1", "2.5", "a,b", "corr-1", "2024-03-09T17:04:05.1234567Z", "0", "ws", "svc", "best_model", "3", "req-1"},
				{"4", "", "true", "corr-1", "2024-03-09T17:04:05.1234567Z", "1", "ws", "svc", "best_model", "3", "req-1"},
			},
		},
		{
			name: "default designation, version from the deployment, no feature names",
			rec: Record{Time: day, RequestID: "req-2", CorrelationID: "c2", Model: "m", ModelVersion: "default",
				Designation: "default", Rows: json.RawMessage(`[[7, 8]]`)},
			wantPath: "ws/svc/m/5/general/2024/03/09/data.csv",
			header:   []string{"col0", "col1"},
			rows:     [][]string{{"7", "8", "c2", "2024-03-09T17:04:05.1234567Z", "0", "ws", "svc", "m", "5", "req-2"}},
		},
		{
			name: "scalar rows, record workspace and service, unsafe names",
			rec: Record{Time: day, RequestID: "r3", Workspace: "other", Service: "../x", Model: "a/b", ModelVersion: "1",
				Designation: "predictions", FeatureNames: []string{"y"}, Rows: json.RawMessage(`[0.5, "no"]`)},
			wantPath: "other/.._x/a_b/1/predictions/2024/03/09/data.csv",
			header:   []string{"y"},
			rows: [][]string{
				{"0.5", "", "2024-03-09T17:04:05.1234567Z", "0", "other", "../x", "a/b", "1", "r3"},
				{"no", "", "2024-03-09T17:04:05.1234567Z", "1", "other", "../x", "a/b", "1", "r3"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			w := newWriter(t, Config{Root: root, Workspace: "ws", Service: "svc", ModelVersions: map[string]string{"m": "5"}})
			if !w.Collect(tt.rec) {
				t.Fatal("Collect dropped the record")
			}
			closeWriter(t, w)
			got := readCSV(t, filepath.Join(root, filepath.FromSlash(tt.wantPath)))
			wantHeader := append(append([]string(nil), tt.header...), CorrelationColumns...)
			if fmt.Sprint(got[0]) != fmt.Sprint(wantHeader) {
				t.Errorf("header = %q, want %q", got[0], wantHeader)
			}
			if fmt.Sprint(got[1:]) != fmt.Sprint(tt.rows) {
				t.Errorf("rows = %q\nwant %q", got[1:], tt.rows)
			}
			if s := w.Stats(); s.Records != 1 || s.Rows != uint64(len(tt.rows)) {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

func TestBatchingFlushesOnTickAndClose(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, Config{Root: root, Workspace: "ws", Service: "svc", FlushInterval: 200 * time.Millisecond})
	rec := Record{Time: day, RequestID: "r", Model: "m", ModelVersion: "1", Designation: "inputs", FeatureNames: []string{"x"}, Rows: json.RawMessage(`[[1]]`)}
	path := filepath.Join(root, "ws/svc/m/1/inputs/2024/03/09/data.csv")
	for range 3 {
		w.Collect(rec)
	}
	deadline := time.Now().Add(3 * time.Second)
	// The rows reach the file before the flush round (write + fsync) is
	// counted: wait for both.
	for len(readLines(t, path)) != 4 || w.Stats().Flushes == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("rows not flushed within the interval: %q (flushes counted: %d)", readLines(t, path), w.Stats().Flushes)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A long interval: rows wait in memory until Close.
	root2 := t.TempDir()
	w2 := newWriter(t, Config{Root: root2, Workspace: "ws", Service: "svc", FlushInterval: time.Hour})
	w2.Collect(rec)
	w2.Collect(rec)
	path2 := filepath.Join(root2, "ws/svc/m/1/inputs/2024/03/09/data.csv")
	time.Sleep(100 * time.Millisecond)
	if n := len(readLines(t, path2)); n > 1 {
		t.Fatalf("rows written before the flush interval: %d lines", n)
	}
	closeWriter(t, w2)
	if n := len(readLines(t, path2)); n != 3 {
		t.Fatalf("after Close: %d lines, want header + 2", n)
	}
	if w2.Collect(rec) || w2.Stats().DroppedClosed != 1 {
		t.Fatalf("Collect after Close: %+v", w2.Stats())
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestDropWhenQueueFull(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		n    int
	}{
		{"bytes bound", Config{QueueBytes: 10}, 5},
		{"records bound", Config{QueueSize: 1}, 20000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Root, tt.cfg.Workspace, tt.cfg.Service = t.TempDir(), "ws", "svc"
			w := newWriter(t, tt.cfg)
			rec := Record{Time: day, Model: "m", ModelVersion: "1", Designation: "inputs", FeatureNames: []string{"x"}, Rows: json.RawMessage(`[[1],[2],[3]]`)}
			start := time.Now()
			accepted := 0
			for range tt.n {
				if w.Collect(rec) {
					accepted++
				}
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("Collect blocked: %v for %d records", time.Since(start), tt.n)
			}
			closeWriter(t, w)
			s := w.Stats()
			if s.DroppedFull == 0 || s.Records+s.DroppedFull != uint64(tt.n) || s.Records != uint64(accepted) {
				t.Fatalf("stats = %+v, accepted %d of %d", s, accepted, tt.n)
			}
		})
	}
}

func TestOpenAppendRepairsPartialLastLine(t *testing.T) {
	tests := []struct {
		name, before, header, after, first string
	}{
		{"torn row", "a,b\n1,2\n3,", "a,b", "a,b\n1,2\n", "a,b"},
		{"torn header", "a,", "a,b", "a,b\n", "a,b"},
		{"intact", "a,b\n1,2\n", "a,b", "a,b\n1,2\n", "a,b"},
		{"empty", "", "a,b", "a,b\n", "a,b"},
		{"other header kept", "x,y\n5,6\n", "a,b", "x,y\n5,6\n", "x,y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "d", "data.csv")
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, []byte(tt.before), 0o644); err != nil {
				t.Fatal(err)
			}
			af, first, err := OpenAppend(path, []byte(tt.header))
			if err != nil {
				t.Fatal(err)
			}
			defer af.Close()
			b, _ := os.ReadFile(path)
			if string(b) != tt.after || string(first) != tt.first {
				t.Fatalf("file %q first %q, want %q %q", b, first, tt.after, tt.first)
			}
			if err := af.Append([]byte("9,9\n")); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(path); string(b) != tt.after+"9,9\n" {
				t.Fatalf("after append: %q", b)
			}
		})
	}
	// A torn line longer than the read chunk.
	path := filepath.Join(t.TempDir(), "big.csv")
	os.WriteFile(path, []byte("h\nok\n"+strings.Repeat("x", 200<<10)), 0o644)
	af, _, err := OpenAppend(path, []byte("h"))
	if err != nil {
		t.Fatal(err)
	}
	af.Close()
	if b, _ := os.ReadFile(path); string(b) != "h\nok\n" {
		t.Fatalf("big torn line not cut: %d bytes", len(b))
	}
}

func TestTwoWritersShareAFile(t *testing.T) {
	root := t.TempDir()
	var wg sync.WaitGroup
	const perWriter = 500
	for i := range 2 {
		w := newWriter(t, Config{Root: root, Workspace: "ws", Service: "svc", FlushInterval: 10 * time.Millisecond, QueueSize: perWriter})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perWriter {
				w.Collect(Record{Time: day, RequestID: fmt.Sprintf("w%d-%d", i, j), Model: "m", ModelVersion: "1", Designation: "inputs",
					FeatureNames: []string{"x"}, Rows: json.RawMessage(`["` + strings.Repeat("v", 3000) + `"]`)})
				if j%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			closeWriter(t, w)
		}()
	}
	wg.Wait()
	rows := readCSV(t, filepath.Join(root, "ws/svc/m/1/inputs/2024/03/09/data.csv"))
	if len(rows) != 1+2*perWriter || rows[0][0] != "x" {
		t.Fatalf("%d rows, header %q", len(rows), rows[0])
	}
	for _, r := range rows[1:] {
		if r[0] == "x" || len(r) != 1+len(CorrelationColumns) {
			t.Fatalf("bad row %q", r[:2])
		}
	}
}

func TestRequestSamplerWritesHourlyLines(t *testing.T) {
	tests := []struct {
		rate     float64
		min, max int
	}{{1, 200, 200}, {0, 0, 0}, {0.5, 60, 140}}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.rate), func(t *testing.T) {
			root := t.TempDir()
			w := newWriter(t, Config{Root: root, Workspace: "ws", Service: "svc", Replica: "svc-0"})
			s := &RequestSampler{Writer: w, Rate: tt.rate}
			for i := range 200 {
				body := []byte(`{"data": [[1, 2]]}`)
				s.Observe(&modelserver.RequestEvent{Start: day, Route: "/score", Method: "POST", RequestID: fmt.Sprint("id-", i),
					Status: 200, Duration: time.Millisecond, RequestBody: body, ResponseBody: []byte("not json")})
				body[0] = 'X' // the sampler must have copied it
			}
			s.Observe(&modelserver.RequestEvent{Start: day, Route: "/", Method: "GET"})
			closeWriter(t, w)
			lines := readLines(t, filepath.Join(root, "ws/svc", RequestsDir, "2024/03/09/17.jsonl"))
			if len(lines) < tt.min || len(lines) > tt.max {
				t.Fatalf("%d lines, want %d..%d", len(lines), tt.min, tt.max)
			}
			if len(lines) == 0 {
				return
			}
			var l struct {
				RequestID string          `json:"requestId"`
				Replica   string          `json:"replica"`
				Request   json.RawMessage `json:"request"`
				Response  json.RawMessage `json:"response"`
			}
			if err := json.Unmarshal([]byte(lines[0]), &l); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(l.RequestID, "id-") || l.Replica != "svc-0" || string(l.Request) != `{"data":[[1,2]]}` || string(l.Response) != `"not json"` {
				t.Fatalf("line = %s", lines[0])
			}
		})
	}
}

func TestPathSegment(t *testing.T) {
	for in, want := range map[string]string{"best_model": "best_model", "": "__", ".": "__", "..": "__", "a/b": "a_b", "x y": "x_y", "v1.2": "v1.2"} {
		if got := PathSegment(in); got != want {
			t.Errorf("PathSegment(%q) = %q, want %q", in, got, want)
		}
	}
}
