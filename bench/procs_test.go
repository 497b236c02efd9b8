package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelship/modelship/modelserver/onnx"
)

// proc is a child process in its own process group, killed (with every
// process it started) when the test ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

// startProc starts bin with args and env added to the environment.
func startProc(t testing.TB, name, bin string, args, env []string) *proc {
	t.Helper()
	p := &proc{name: name, log: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

// stop sends SIGTERM to the process group, then SIGKILL after 10 s.
func (p *proc) stop() {
	pgid := p.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
	syscall.Kill(-pgid, syscall.SIGKILL) // stragglers of the group, if any
	<-p.done
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// syncBuffer is a bytes.Buffer safe for a process's writer and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitHealthy polls GET url until it answers 200, the process exits or
// timeout passes.
func waitHealthy(t testing.TB, p *proc, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("%s exited:\n%s", p.name, p.log)
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not healthy at %s within %v:\n%s", p.name, url, timeout, p.log)
}

// rssMiB is a process's resident set in MiB (VmRSS), 0 if unknown.
func rssMiB(pid int) float64 { return statusMiB(pid, "VmRSS:") }

// rssParts is a process's resident memory by kind: anonymous (heap,
// stacks, C allocations) and file-backed (the binary, shared libraries).
func rssParts(pid int) string {
	return fmt.Sprintf("anonymous %.1f, files %.1f", statusMiB(pid, "RssAnon:"), statusMiB(pid, "RssFile:"))
}

// statusMiB reads one kB field of /proc/<pid>/status, in MiB.
func statusMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuTime is the user+system CPU time a process has used (its own
// threads, not its children's), at the kernel's clock-tick resolution.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the ")" closing the command name: state is field 3,
	// utime 14 and stime 15 (1-based), i.e. indexes 11 and 12 here.
	_, rest, _ := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticksPerSecond
}

// server is a running `modelship server` and a CLI bound to it.
type server struct {
	*proc
	bin     string
	home    string
	dataDir string
	url     string
	gateway string
	token   string
}

func startServer(t testing.TB, bin string) *server {
	t.Helper()
	s := &server{bin: bin, home: t.TempDir(), dataDir: t.TempDir()}
	s.proc = startProc(t, "modelship server", bin,
		[]string{"server", "--data-dir", s.dataDir, "--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"},
		// HOME is a temp dir (no ~/.modelship/config.json of the user); the
		// replicas still need the ONNX Runtime that setup.sh installed under
		// the real HOME.
		[]string{"HOME=" + s.home, "MODELSHIP_ORT_LIB=" + onnx.DefaultLibraryPath()})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if s.exited() {
			t.Fatalf("server exited:\n%s", s.log)
		}
		b, err := os.ReadFile(filepath.Join(s.dataDir, "server.json"))
		var info struct{ URL, GatewayURL string }
		if err == nil && json.Unmarshal(b, &info) == nil && info.URL != "" {
			tok, _ := os.ReadFile(filepath.Join(s.dataDir, "admin-token"))
			if resp, err := http.Get(info.URL + "/healthz"); err == nil && len(tok) > 0 {
				resp.Body.Close()
				s.url, s.gateway, s.token = info.URL, info.GatewayURL, strings.TrimSpace(string(tok))
				return s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server did not start:\n%s", s.log)
	return nil
}

// cli runs the modelship CLI against s and returns its stdout; it fails
// the test on an error.
func (s *server) cli(ctx context.Context, t testing.TB, args ...string) string {
	t.Helper()
	out, err := s.tryCLI(ctx, args...)
	if err != nil {
		t.Fatalf("%v\nserver log (tail):\n%s", err, tail(s.log.String(), 3000))
	}
	return out
}

// tryCLI runs the modelship CLI against s; the error holds its output.
func (s *server) tryCLI(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MODELSHIP_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "HOME="+s.home, "MODELSHIP_URL="+s.url, "MODELSHIP_TOKEN="+s.token)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("modelship %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, tail(out.String(), 2000), tail(errb.String(), 2000))
	}
	return out.String(), nil
}

// getService reads a service through the API (cheaper than the CLI when
// polling).
func (s *server) getService(ctx context.Context, name string) (service, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/api/v1/workspaces/default/services/"+name, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return service{}, err
	}
	defer resp.Body.Close()
	var svc service
	if resp.StatusCode != 200 {
		return svc, fmt.Errorf("GET service %s: %s", name, resp.Status)
	}
	return svc, json.NewDecoder(resp.Body).Decode(&svc)
}

// service is the part of modelship.Service the benchmarks read.
type service struct {
	State           string `json:"state"`
	ScoringURI      string `json:"scoringUri"`
	DesiredReplicas int    `json:"desiredReplicas"`
	Replicas        []struct {
		State string `json:"state"`
		Ready bool   `json:"ready"`
	} `json:"replicas"`
}

func (s service) ready() int {
	n := 0
	for _, r := range s.Replicas {
		if r.Ready {
			n++
		}
	}
	return n
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
