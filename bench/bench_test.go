package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment:
//
//	MODELSHIP_BENCH=1          run the benchmarks (skipped otherwise)
//	MODELSHIP_BIN              the modelship binary (default: built into a temp dir)
//	MODELSHIP_BENCH_OUT        where to write the Markdown results (default: only the test log)
//	MODELSHIP_BENCH_SLICE      closed-loop time per target and round (default 1.5s)
//	MODELSHIP_BENCH_ROUNDS     closed-loop rounds, targets interleaved (default 3)
//	MODELSHIP_BENCH_WORKERS    closed-loop clients (default 8)
//	MODELSHIP_BENCH_OPEN       open-loop run length (default 3s)
const (
	python        = "/usr/bin/python3"
	noopBodyEnv   = "MODELSHIP_BENCH_NOOP_BODY"
	noopListenEnv = "MODELSHIP_BENCH_NOOP_LISTEN"
	relayToEnv    = "MODELSHIP_BENCH_RELAY_TO"
	pyFloorEnv    = "MODELSHIP_BENCH_PYFLOOR_WORKERS"
)

var binPath string

func TestMain(m *testing.M) {
	if body := os.Getenv(noopBodyEnv); body != "" {
		os.Exit(serveNoop(body, os.Getenv(noopListenEnv)))
	}
	if to := os.Getenv(relayToEnv); to != "" {
		os.Exit(serveRelay(os.Getenv(noopListenEnv), to))
	}
	if n := os.Getenv(pyFloorEnv); n != "" {
		os.Exit(servePyFloor(os.Getenv(noopListenEnv), n))
	}
	if os.Getenv("MODELSHIP_BENCH") != "1" {
		os.Exit(m.Run()) // the tests skip themselves
	}
	binPath = os.Getenv("MODELSHIP_BIN")
	var dir string
	if binPath == "" {
		var err error
		if dir, err = os.MkdirTemp("", "modelship-bench-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		binPath = filepath.Join(dir, "modelship")
		build := exec.Command("go", "build", "-o", binPath, "../cmd/modelship")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building modelship:", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	} else if abs, err := filepath.Abs(binPath); err == nil {
		binPath = abs
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// serveNoop is the ceiling: a Go net/http handler that reads the body and
// answers a fixed JSON (the ONNX replica's own answer). It runs as a child
// process (this test binary re-executed) so that it does not share a Go
// runtime with the load generator, like the replicas.
func serveNoop(bodyFile, addr string) int {
	body, err := os.ReadFile(bodyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// serveRelay copies bytes between each client connection and a connection
// of its own to the address to, both ways, and nothing else: no HTTP, no
// routing, no auth. It is the floor under any proxy that runs as a process
// of its own on this machine (the gateway is one): what one more loopback
// hop and one more process waking up per request cost here.
func serveRelay(addr, to string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", to)
			if err != nil {
				return
			}
			defer u.Close()
			go io.Copy(u, c)
			io.Copy(c, u)
		}()
	}
}

// pyFloorScript is the least a Python process can do per request: read a
// frame (8-byte header: meta and body lengths) from fd 3 and answer a
// fixed one on fd 4, as the score.py runtime's protocol does.
const pyFloorScript = `
import os, struct
r = os.fdopen(3, "rb", buffering=65536)
H = struct.Struct("<II")
body = b'{"result": [0.5]}'
reply = H.pack(0, len(body)) + body
while True:
    h = r.read(8)
    if len(h) < 8:
        break
    ml, bl = H.unpack(h)
    r.read(ml + bl)
    os.write(4, reply)
`

// servePyFloor is the floor under the score.py replica: a net/http handler
// that passes each request body to one of n Python processes running
// pyFloorScript over a pair of pipes and answers what it sends back. No
// run(), no request ids, no metrics: what HTTP plus one round trip to a
// Python process cost on this machine.
func servePyFloor(addr, workers string) int {
	n, err := strconv.Atoi(workers)
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "bad worker count", workers)
		return 1
	}
	type worker struct {
		w, r *os.File
		buf  []byte
	}
	free := make(chan *worker, n)
	for range n {
		reqR, reqW, err1 := os.Pipe()
		respR, respW, err2 := os.Pipe()
		if err := errors.Join(err1, err2); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		cmd := exec.Command(python, "-c", pyFloorScript)
		cmd.ExtraFiles = []*os.File{reqR, respW}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		reqR.Close()
		respW.Close()
		free <- &worker{w: reqW, r: respR}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			io.WriteString(w, "Healthy")
			return
		}
		body, _ := io.ReadAll(r.Body)
		wk := <-free
		frame := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(wk.buf[:0], 0), uint32(len(body)))
		frame = append(frame, body...)
		wk.buf = frame
		var hdr [8]byte
		_, err := wk.w.Write(frame)
		if err == nil {
			_, err = io.ReadFull(wk.r, hdr[:])
		}
		out := make([]byte, binary.LittleEndian.Uint32(hdr[:4])+binary.LittleEndian.Uint32(hdr[4:]))
		if err == nil {
			_, err = io.ReadFull(wk.r, out)
		}
		free <- wk
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	}))
	fmt.Fprintln(os.Stderr, err)
	return 1
}

func needBench(t *testing.T) {
	t.Helper()
	if os.Getenv("MODELSHIP_BENCH") != "1" {
		t.Skip("benchmarks run only with MODELSHIP_BENCH=1 (make bench)")
	}
	if _, err := os.Stat(python); err != nil {
		t.Skipf("%s is missing; run scripts/setup.sh", python)
	}
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// genMLP writes the ONNX MLP 64->256->10 (ReLU, softmax; random weights),
// the same model as modelserver's benchmarks.
const genMLP = `import sys, numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper
rng = np.random.default_rng(7)
W0 = rng.normal(0, 0.1, (64, 256)).astype(np.float32); B0 = np.zeros(256, np.float32)
W1 = rng.normal(0, 0.1, (256, 10)).astype(np.float32); B1 = np.zeros(10, np.float32)
g = helper.make_graph([
    helper.make_node("Gemm", ["input", "W0", "B0"], ["z0"]),
    helper.make_node("Relu", ["z0"], ["a0"]),
    helper.make_node("Gemm", ["a0", "W1", "B1"], ["z1"]),
    helper.make_node("Softmax", ["z1"], ["probabilities"], axis=1)],
    "mlp",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
    [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
    [numpy_helper.from_array(a, n) for a, n in ((W0, "W0"), (B0, "B0"), (W1, "W1"), (B1, "B1"))])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
m.ir_version = 8
onnx.save(m, sys.argv[1])
`

const trivialScore = `def init():
    pass
def run(raw):
    return {"result": [0.5]}
`

const sleepScore = `import time
def init():
    pass
def run(raw):
    time.sleep(0.02)
    return {"result": [0.5]}
`

const sklearnScore = `import glob, json, os
import joblib, numpy as np
def init():
    global model
    root = os.environ["AZUREML_MODEL_DIR"]
    path = os.path.join(root, "model.pkl")
    if not os.path.exists(path):
        path = glob.glob(os.path.join(root, "**", "*.pkl"), recursive=True)[0]
    model = joblib.load(path)
def run(raw):
    return model.predict(np.array(json.loads(raw)["data"])).tolist()
`

// Request bodies: one 1x64 FP32 row for the MLP, OIP and Azure style.
var (
	mlpRow    = strings.TrimSuffix(strings.Repeat("0,0.5,1,0.25,", 16), ",")
	oipBody   = []byte(`{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[` + mlpRow + `]}]}`)
	scoreMLP  = []byte(`{"data":[[` + mlpRow + `]]}`)
	scoreTiny = []byte(`{"data":[[1,2,3,4]]}`)
	diabetes  = []byte(`{"data":[[0.038,0.050,0.061,0.021,-0.044,-0.034,-0.043,-0.002,0.019,-0.017]]}`)
	jsonHdr   = http.Header{"Content-Type": {"application/json"}}
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// post sends one request and returns the status and body.
func post(t *testing.T, url string, hdr http.Header, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(string(body)))
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func mustOK(t *testing.T, tg Target) []byte {
	t.Helper()
	code, b := post(t, tg.URL, tg.Header, tg.Body)
	if code != 200 {
		t.Fatalf("%s: %d %s", tg.Name, code, b)
	}
	return b
}

// TestBench measures, in one run on loopback: the no-op ceiling, replicas
// directly, the same models through the real server's gateway with key
// auth, deploy -> Healthy, autoscale reaction and idle memory, and writes
// the Markdown tables to MODELSHIP_BENCH_OUT.
func TestBench(t *testing.T) {
	needBench(t)
	ctx := t.Context()
	rep := &report{}
	defer rep.flush(t)

	slice := envDuration("MODELSHIP_BENCH_SLICE", 1500*time.Millisecond)
	rounds := envInt("MODELSHIP_BENCH_ROUNDS", 3)
	workers := envInt("MODELSHIP_BENCH_WORKERS", 8)
	openFor := envDuration("MODELSHIP_BENCH_OPEN", 3*time.Second)
	const perReplica = 2
	rep.perReplica = perReplica
	rep.settings = fmt.Sprintf("closed loop: %d clients (keep-alive), %d interleaved rounds of %v per target; open loop: vegeta, %v per run; %d-core machine; "+
		"replicas with maxConcurrentRequestsPerContainer %d and cpu 0.1 (direct: `GOMAXPROCS=1 serve-model --workers %d --max-concurrency %d`, as the server starts them)",
		workers, rounds, slice, openFor, runtimeCPUs(), perReplica, perReplica, perReplica)

	// Models and scripts.
	dir := t.TempDir()
	mlp := filepath.Join(dir, "mlp", "mlp.onnx")
	writeFile(t, filepath.Join(dir, "gen.py"), genMLP)
	os.MkdirAll(filepath.Dir(mlp), 0o755)
	run(t, python, filepath.Join(dir, "gen.py"), mlp)
	writeFile(t, filepath.Join(dir, "trivial", "src", "score.py"), trivialScore)
	writeFile(t, filepath.Join(dir, "sleep", "src", "score.py"), sleepScore)
	writeFile(t, filepath.Join(dir, "sklearn", "src", "score.py"), sklearnScore)
	pkl := filepath.Join(dir, "sklearn", "model.pkl")
	root, _ := filepath.Abs("..")
	run(t, python, filepath.Join(root, "examples", "diabetes", "train.py"), "-o", pkl)
	dummy := filepath.Join(dir, "dummy.pkl")
	writeFile(t, dummy, "weights")

	// (1) the ceiling and (2) the replicas directly: serve-model children with
	// the settings the server gives a replica of maxConcurrentRequestsPerContainer
	// perReplica (that many Python workers, that many ONNX inferences at once)
	// and the CPU of the deployments below (cpu 0.1: GOMAXPROCS=1).
	onnxPort, pyPort := freePort(t), freePort(t)
	replicaEnv := []string{"GOMAXPROCS=1"}
	onnxRep := startProc(t, "serve-model (onnx)", binPath, []string{"serve-model", "--model-dir", filepath.Dir(mlp),
		"--model-name", "mlp", "--model-version", "1", "--runtime", "onnx", "--max-concurrency", strconv.Itoa(perReplica), "--port", strconv.Itoa(onnxPort)}, replicaEnv)
	pyRep := startProc(t, "serve-model (score.py)", binPath, []string{"serve-model", "--entry-script", "score.py",
		"--source-dir", filepath.Join(dir, "trivial", "src"), "--python", python, "--workers", strconv.Itoa(perReplica), "--port", strconv.Itoa(pyPort)}, replicaEnv)
	onnxURL := fmt.Sprintf("http://127.0.0.1:%d", onnxPort)
	pyURL := fmt.Sprintf("http://127.0.0.1:%d", pyPort)
	waitHealthy(t, onnxRep, onnxURL+"/v2/health/ready", 30*time.Second)
	waitHealthy(t, pyRep, pyURL+"/v2/health/ready", 30*time.Second)
	directInfer := Target{Name: "onnx OIP infer, direct", URL: onnxURL + "/v2/models/mlp/infer", Body: oipBody, Header: jsonHdr}
	directOnnxScore := Target{Name: "onnx /score, direct", URL: onnxURL + "/score", Body: scoreMLP, Header: jsonHdr}
	directPy := Target{Name: "score.py /score, direct", URL: pyURL + "/score", Body: scoreTiny, Header: jsonHdr}
	answer := mustOK(t, directInfer)
	for range 20 {
		mustOK(t, directInfer)
		mustOK(t, directOnnxScore)
	}
	// Idle: 3 s without traffic (a replica gives back its start-up-only
	// pages 2 s after its runtime is ready, see internal/memtrim).
	time.Sleep(3 * time.Second)
	rep.onnxReplicaIdleMiB, rep.onnxReplicaIdleParts = rssMiB(onnxRep.pid()), rssParts(onnxRep.pid())

	noopBody := filepath.Join(dir, "noop.json")
	writeFile(t, noopBody, string(answer))
	self, _ := os.Executable()
	noopAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	noop := startProc(t, "no-op handler", self, []string{"-test.run=^$"}, []string{noopBodyEnv + "=" + noopBody, noopListenEnv + "=" + noopAddr})
	noopT := Target{Name: "no-op Go handler (ceiling)", URL: "http://" + noopAddr + "/v2/models/mlp/infer", Body: oipBody, Header: jsonHdr}
	waitHealthy(t, noop, "http://"+noopAddr+"/", 10*time.Second)

	// The floor under the score.py replica (servePyFloor), as many Python
	// processes as it has workers, on the replicas' GOMAXPROCS.
	pyFloorAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	pyFloor := startProc(t, "HTTP + Python pipe floor", self, []string{"-test.run=^$"}, append([]string{pyFloorEnv + "=" + strconv.Itoa(perReplica), noopListenEnv + "=" + pyFloorAddr}, replicaEnv...))
	pyFloorT := Target{Name: "HTTP + Python pipe floor", URL: "http://" + pyFloorAddr + "/score", Body: scoreTiny, Header: jsonHdr}
	waitHealthy(t, pyFloor, "http://"+pyFloorAddr+"/", 10*time.Second)

	// The byte relay in front of the ONNX replica: the floor of a proxy
	// process on this machine (serveRelay).
	relayAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	relay := startProc(t, "byte relay", self, []string{"-test.run=^$"}, []string{relayToEnv + "=" + fmt.Sprintf("127.0.0.1:%d", onnxPort), noopListenEnv + "=" + relayAddr})
	relayT := Target{Name: "onnx /score, byte relay", URL: "http://" + relayAddr + "/score", Body: scoreMLP, Header: jsonHdr}
	waitHealthy(t, relay, "http://"+relayAddr+"/", 10*time.Second)

	// (3) the real server, key auth on.
	s := startServer(t, binPath)
	// Idle: 3 s after start (the server gives back its start-up-only
	// pages 2 s after start, see internal/memtrim).
	time.Sleep(3 * time.Second)
	rep.serverEmptyMiB = rssMiB(s.pid())
	s.cli(ctx, t, "model", "register", "-n", "mlp", "-p", mlp, "--model-framework", "Onnx")
	s.cli(ctx, t, "model", "register", "-n", "dummy", "-p", dummy)
	s.cli(ctx, t, "model", "register", "-n", "diabetes", "-p", pkl, "--model-framework", "ScikitLearn")
	const small = `"containerResourceRequirements": {"cpu": 0.1, "memoryInGB": 0.2}`
	fixed := fmt.Sprintf(`{"computeType": "aks", "numReplicas": 1, "authEnabled": true, "maxConcurrentRequestsPerContainer": %d, %s}`, perReplica, small)
	ic := func(name string) string {
		p := filepath.Join(dir, name, "ic.json")
		writeFile(t, p, fmt.Sprintf(`{"entryScript": "score.py", "sourceDirectory": %q, "environment": {"python": {"interpreterPath": %q}}}`,
			filepath.Join(dir, name, "src"), python))
		return p
	}
	dc := func(name, content string) string {
		p := filepath.Join(dir, name, "dc.json")
		writeFile(t, p, content)
		return p
	}
	deploy := func(name, model string, args ...string) (time.Duration, error) {
		start := time.Now()
		_, err := s.tryCLI(ctx, append([]string{"model", "deploy", "-ct", "local", "-n", name, "-m", model}, args...)...)
		d := time.Since(start)
		if err != nil {
			return d, err
		}
		if svc, err := s.getService(ctx, name); err != nil || svc.State != "Healthy" {
			return d, fmt.Errorf("%s after deploy: %+v %v", name, svc, err)
		}
		return d, nil
	}
	mustDeploy := func(name, model string, args ...string) time.Duration {
		t.Helper()
		d, err := deploy(name, model, args...)
		if err != nil {
			t.Fatalf("%v\nserver log (tail):\n%s", err, tail(s.log.String(), 3000))
		}
		return d
	}
	// The ONNX no-code deploy is allowed to fail: the rest is still measured
	// and the report says why the ONNX gateway rows are missing.
	var onnxErr error
	rep.deployONNX, onnxErr = deploy("onnx-svc", "mlp:1", "-dc", dc("onnx", fixed))
	if onnxErr != nil {
		rep.onnxDeployErr = onnxErr.Error()
		rep.deployONNX = 0
		t.Errorf("ONNX no-code deploy failed; continuing without the ONNX gateway rows: %v", onnxErr)
	}
	rep.deploySklearn = mustDeploy("sklearn-svc", "diabetes:1", "-ic", ic("sklearn"), "-dc", dc("sklearn", fixed))
	time.Sleep(2 * time.Second)
	rep.serverOneSvcMiB = rssMiB(s.pid())
	mustDeploy("py-svc", "dummy:1", "-ic", ic("trivial"), "-dc", dc("trivial", fixed))
	key := func(name string) http.Header {
		out := s.cli(ctx, t, "service", "get-keys", name, "-o", "json")
		k := strings.Split(strings.Split(out, `"primaryKey": "`)[1], `"`)[0]
		return http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + k}}
	}
	gwURL := func(name string) string { return s.gateway + "/api/v1/service/" + name + "/score" }
	gwPy := Target{Name: "score.py /score, gateway", URL: gwURL("py-svc"), Body: scoreTiny, Header: key("py-svc")}
	gwSklearn := Target{Name: "sklearn score.py, gateway", URL: gwURL("sklearn-svc"), Body: diabetes, Header: key("sklearn-svc")}
	mustOK(t, gwSklearn)
	type pair struct {
		direct, gw Target
		replica    *proc // serving direct
	}
	pairs := []pair{{directPy, gwPy, pyRep}}
	targets := []Target{noopT, directInfer, directOnnxScore, relayT, pyFloorT, directPy, gwPy}
	if onnxErr == nil {
		gwOnnx := Target{Name: "onnx /score, gateway", URL: gwURL("onnx-svc"), Body: scoreMLP, Header: key("onnx-svc")}
		pairs = append([]pair{{directOnnxScore, gwOnnx, onnxRep}}, pairs...)
		targets = append(targets, gwOnnx)
	}

	// Closed-loop maximum, targets interleaved in short slices so that drift
	// in the machine's background load hits all of them alike.
	closed := map[string]Result{}
	for _, tg := range targets { // warm-up: connections, workers, code paths
		if r := ClosedLoop(ctx, tg, workers, 20*workers, 5*time.Second); r.Errors > 0 {
			t.Fatalf("%s warm-up: %v (%s)", tg.Name, r, r.FirstErr)
		}
		closed[tg.Name] = Result{Codes: map[int]int{}}
	}
	for range rounds {
		for _, tg := range targets {
			closed[tg.Name] = merge(closed[tg.Name], ClosedLoop(ctx, tg, workers, math.MaxInt32, slice))
		}
	}
	for _, tg := range targets {
		t.Logf("closed  %-28s %v", tg.Name, closed[tg.Name])
		rep.closed = append(rep.closed, row{tg, closed[tg.Name]})
	}

	// Open loop: each replica directly at half its own maximum; the gateway
	// at the same rate as its direct counterpart (issue 4), and at half the
	// gateway's own maximum when that is lower.
	half := func(r Result) int { return max(int(r.RPS()/2), 1) }
	openRun := func(tg Target, rate int) Result {
		r := OpenLoop(ctx, tg, rate, openFor)
		t.Logf("open    %-28s @%d/s %v", tg.Name, rate, r)
		rep.open = append(rep.open, openRow{row{tg, r}, rate})
		return r
	}
	openRun(noopT, half(closed[noopT.Name]))
	openRun(directInfer, half(closed[directInfer.Name]))
	openRun(pyFloorT, half(closed[pyFloorT.Name]))
	var onnxLastUse time.Time // the direct ONNX replica's last request
	for _, p := range pairs {
		dClosed, gClosed := closed[p.direct.Name], closed[p.gw.Name]
		rate := half(dClosed)
		cmp := gatewayCmp{name: p.direct.Name, direct: dClosed, gateway: gClosed, rate: rate, clientsEq: perReplica}
		// The gateway lets perReplica requests in flight per replica and
		// queues the rest; the same closed loop with only perReplica
		// clients isolates the per-request cost from that queueing.
		cmp.directEq, cmp.gatewayEq = Result{Codes: map[int]int{}}, Result{Codes: map[int]int{}}
		// CPU time per request of the replica's serve-model process (Go
		// side only: Python workers are children) and of the server.
		var replicaCPU, serverCPU time.Duration
		for range rounds {
			c0 := cpuTime(p.replica.pid())
			cmp.directEq = merge(cmp.directEq, ClosedLoop(ctx, p.direct, perReplica, math.MaxInt32, slice))
			c1 := cpuTime(s.pid())
			replicaCPU += cpuTime(p.replica.pid()) - c0
			cmp.gatewayEq = merge(cmp.gatewayEq, ClosedLoop(ctx, p.gw, perReplica, math.MaxInt32, slice))
			serverCPU += cpuTime(s.pid()) - c1
		}
		cmp.replicaCPU = replicaCPU / time.Duration(max(cmp.directEq.Requests, 1))
		cmp.serverCPU = serverCPU / time.Duration(max(cmp.gatewayEq.Requests, 1))
		t.Logf("closed  %-28s %d clients: direct %v; gateway %v", p.direct.Name, perReplica, cmp.directEq, cmp.gatewayEq)
		cmp.dOpen = openRun(p.direct, rate)
		cmp.gOpen = openRun(p.gw, rate)
		if p.direct.Name == directOnnxScore.Name {
			cmp.relay, cmp.relayOpen = closed[relayT.Name], openRun(relayT, rate)
		}
		if p.replica == onnxRep {
			onnxLastUse = time.Now()
		}
		if gr := half(gClosed); gr < rate {
			cmp.lowRate = gr
			cmp.dLow = openRun(p.direct, gr)
			cmp.gLow = openRun(p.gw, gr)
		}
		rep.gateway = append(rep.gateway, cmp)
	}

	// Telemetry and data collection on vs off (issue 7: on ≥ 90 % of off).
	telOn := fmt.Sprintf(`{"computeType": "aks", "numReplicas": 1, "authEnabled": true, "maxConcurrentRequestsPerContainer": %d, %s,
		"appInsightsEnabled": true, "dataCollection": {"storageEnabled": true}}`, perReplica, small)
	mustDeploy("py-tel-svc", "dummy:1", "-ic", ic("trivial"), "-dc", dc("trivial-tel", telOn))
	gwPyTel := Target{Name: "score.py /score, gateway, telemetry on", URL: gwURL("py-tel-svc"), Body: scoreTiny, Header: key("py-tel-svc")}
	mustOK(t, gwPyTel)
	rep.telemetryOff, rep.telemetryOn = Result{Codes: map[int]int{}}, Result{Codes: map[int]int{}}
	for range rounds {
		rep.telemetryOff = merge(rep.telemetryOff, ClosedLoop(ctx, gwPy, workers, math.MaxInt32, slice))
		rep.telemetryOn = merge(rep.telemetryOn, ClosedLoop(ctx, gwPyTel, workers, math.MaxInt32, slice))
	}
	t.Logf("closed  telemetry off %v; on %v", rep.telemetryOff, rep.telemetryOn)

	// Autoscale reaction: 1 replica, target 70 %, refresh 1 s; step from 1
	// to 4 closed-loop clients on a score.py that sleeps 20 ms.
	const clients, target = 4, 70
	auto := fmt.Sprintf(`{"computeType": "aks", "authEnabled": true, %s, "autoScaler": {"autoscaleEnabled": true,
		"minReplicas": 1, "maxReplicas": 10, "refreshPeriodInSeconds": 1, "targetUtilization": %d}}`, small, target)
	mustDeploy("sleep-svc", "dummy:1", "-ic", ic("sleep"), "-dc", dc("sleep", auto))
	sleepT := Target{Name: "sleep 20 ms score.py, gateway", URL: gwURL("sleep-svc"), Body: scoreTiny, Header: key("sleep-svc")}
	rep.autoscale = measureAutoscale(ctx, t, s, sleepT, clients, target)

	// Idle memory and CPU after all of it (5 services deployed, 6 replicas
	// of the autoscaled one until it scales down).
	time.Sleep(time.Second)
	c0 := cpuTime(s.pid())
	time.Sleep(3 * time.Second)
	rep.serverIdleCPU = float64(cpuTime(s.pid())-c0) / float64(3*time.Second)
	rep.serverEndMiB = rssMiB(s.pid())
	rep.onnxReplicaEndMiB, rep.onnxReplicaEndParts = rssMiB(onnxRep.pid()), rssParts(onnxRep.pid())
	rep.onnxReplicaEndIdle = time.Since(onnxLastUse)
}

func merge(a, b Result) Result {
	// Percentiles cannot be merged exactly; keep the worst slice's, which
	// is what a reader of p99 wants to know.
	out := Result{Requests: a.Requests + b.Requests, Errors: a.Errors + b.Errors, Codes: map[int]int{},
		Elapsed: a.Elapsed + b.Elapsed, P50: max(a.P50, b.P50), P99: max(a.P99, b.P99), FirstErr: a.FirstErr}
	if out.FirstErr == "" {
		out.FirstErr = b.FirstErr
	}
	for _, m := range []map[int]int{a.Codes, b.Codes} {
		for c, n := range m {
			out.Codes[c] += n
		}
	}
	return out
}

// autoscaleResult is what measureAutoscale saw.
type autoscaleResult struct {
	clients, target, needed int
	toDesired, toReady      time.Duration // -1: not reached
	maxDesired, maxReady    int
	load                    Result
	other5xx, got503        int
}

// measureAutoscale runs 1 client for 3 s, then clients for up to 15 s while
// polling the service, and reports when the desired and the ready replica
// counts reached ceil(clients / (target/100)).
func measureAutoscale(ctx context.Context, t *testing.T, s *server, tg Target, clients, target int) autoscaleResult {
	res := autoscaleResult{clients: clients, target: target, toDesired: -1, toReady: -1,
		needed: int(math.Ceil(float64(clients) * 100 / float64(target)))}
	ClosedLoop(ctx, tg, 1, math.MaxInt32, 3*time.Second)
	loadCtx, stop := context.WithCancel(ctx)
	done := make(chan Result, 1)
	start := time.Now()
	go func() { done <- ClosedLoop(loadCtx, tg, clients, math.MaxInt32, 15*time.Second) }()
	var readyAt time.Time
	for time.Since(start) < 15*time.Second {
		svc, err := s.getService(ctx, "sleep-svc")
		if err == nil {
			res.maxDesired = max(res.maxDesired, svc.DesiredReplicas)
			res.maxReady = max(res.maxReady, svc.ready())
			if res.toDesired < 0 && svc.DesiredReplicas >= res.needed {
				res.toDesired = time.Since(start)
			}
			if res.toReady < 0 && svc.ready() >= res.needed {
				res.toReady = time.Since(start)
				readyAt = time.Now()
			}
		}
		if !readyAt.IsZero() && time.Since(readyAt) > 2*time.Second {
			break // keep the load on a little after scaling, for the error count
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	res.load = <-done
	for c, n := range res.load.Codes {
		switch {
		case c == 503:
			res.got503 += n
		case c >= 500 || c == 0:
			res.other5xx += n
		}
	}
	t.Logf("autoscale: %+v", res)
	return res
}
