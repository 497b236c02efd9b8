// Package e2e runs the real modelship binary: a server on loopback ports in
// a temporary data dir, driven by the CLI and by raw HTTP.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "modelship-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = os.Getenv("MODELSHIP_TEST_BINARY")
	if binPath == "" {
		binPath = filepath.Join(dir, "modelship")
		build := exec.Command("go", "build", "-o", binPath, "../cmd/modelship")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building modelship:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running `modelship server` child process.
type server struct {
	t       testing.TB
	cmd     *exec.Cmd
	dataDir string
	home    string
	url     string
	gateway string
	token   string
	log     *syncBuffer
	done    chan struct{}
}

// startServer runs the server on free loopback ports with dataDir (a new
// temporary dir when empty) and waits until it answers.
func startServer(t testing.TB, dataDir string, args ...string) *server {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	all := append([]string{"server", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"}, args...)
	return startServerWith(t, t.TempDir(), dataDir, all)
}

// startServerWith runs the binary with args and HOME=home, and waits for
// the server.json it writes into dataDir.
func startServerWith(t testing.TB, home, dataDir string, all []string) *server {
	t.Helper()
	os.Remove(filepath.Join(dataDir, "server.json"))
	s := &server{t: t, dataDir: dataDir, home: home, log: &syncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(binPath, all...)
	s.cmd.Env = append(os.Environ(), "HOME="+s.home)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.kill() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			t.Fatalf("server exited early:\n%s", s.log)
		default:
		}
		b, err := os.ReadFile(filepath.Join(dataDir, "server.json"))
		if err == nil {
			var info struct{ URL, GatewayURL string }
			if json.Unmarshal(b, &info) == nil && info.URL != "" {
				if resp, err := http.Get(info.URL + "/healthz"); err == nil {
					resp.Body.Close()
					tok, _ := os.ReadFile(filepath.Join(dataDir, "admin-token"))
					s.url, s.gateway, s.token = info.URL, info.GatewayURL, strings.TrimSpace(string(tok))
					return s
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server did not start:\n%s", s.log)
	return nil
}

// kill stops the server with SIGKILL (no cleanup at all).
func (s *server) kill() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
		<-s.done
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		return errors.New("server did not stop within 15s of SIGTERM")
	}
	if !s.cmd.ProcessState.Success() {
		return fmt.Errorf("server exited with %v:\n%s", s.cmd.ProcessState, s.log)
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for the process's writer and the test.
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

type result struct {
	stdout, stderr string
	code           int
}

// cli runs the CLI against s with the given extra environment.
func (s *server) cli(t *testing.T, args ...string) result {
	t.Helper()
	return s.cliEnv(t, []string{"MODELSHIP_URL=" + s.url, "MODELSHIP_TOKEN=" + s.token}, args...)
}

func (s *server) cliEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	base := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MODELSHIP_") && !strings.HasPrefix(kv, "HOME=") {
			base = append(base, kv)
		}
	}
	cmd.Env = append(append(base, "HOME="+s.home), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// ok runs the CLI and fails the test on a non-zero exit.
func (s *server) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := s.cli(t, args...)
	if r.code != 0 {
		t.Fatalf("modelship %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs the CLI, expects a non-zero exit and a message on stderr.
func (s *server) fails(t *testing.T, want string, args ...string) result {
	t.Helper()
	r := s.cli(t, args...)
	if r.code == 0 {
		t.Fatalf("modelship %s succeeded, want failure with %q\nstdout: %s", strings.Join(args, " "), want, r.stdout)
	}
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("modelship %s: stderr %q does not contain %q", strings.Join(args, " "), r.stderr, want)
	}
	return r
}

func (s *server) request(t *testing.T, method, path, token string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	return v
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
