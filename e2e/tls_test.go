package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/internal/tlsutil"
)

// serverInfo is <data-dir>/server.json.
type serverInfo struct {
	URL        string `json:"url"`
	GatewayURL string `json:"gatewayUrl"`
	CAFile     string `json:"caFile"`
}

// startTLSServer is startServer for a server that serves https: it waits for
// server.json and probes /healthz without verifying the certificate (the
// tests verify it themselves).
func startTLSServer(t *testing.T, dataDir string, args ...string) (*server, serverInfo) {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	os.Remove(filepath.Join(dataDir, "server.json"))
	s := &server{t: t, dataDir: dataDir, home: t.TempDir(), log: &syncBuffer{}, done: make(chan struct{})}
	all := append([]string{"server", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"}, args...)
	s.cmd = exec.Command(binPath, all...)
	s.cmd.Env = append(os.Environ(), "HOME="+s.home)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.kill)
	probe := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer probe.CloseIdleConnections()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-s.done:
			t.Fatalf("server exited early:\n%s", s.log)
		default:
		}
		var info serverInfo
		b, err := os.ReadFile(filepath.Join(dataDir, "server.json"))
		if err != nil || json.Unmarshal(b, &info) != nil || info.URL == "" {
			continue
		}
		if resp, err := probe.Get(info.URL + "/healthz"); err == nil {
			resp.Body.Close()
			tok, _ := os.ReadFile(filepath.Join(dataDir, "admin-token"))
			s.url, s.gateway, s.token = info.URL, info.GatewayURL, strings.TrimSpace(string(tok))
			return s, info
		}
	}
	t.Fatalf("server did not start:\n%s", s.log)
	return nil, serverInfo{}
}

// trustConfig writes the CLI config in the server's HOME so that s.ok and
// s.cli verify the server with caFile.
func (s *server) trustConfig(t *testing.T, caFile string) {
	b, _ := json.Marshal(map[string]string{"url": s.url, "caFile": caFile})
	writeFile(t, filepath.Join(s.home, ".modelship", "config.json"), b)
}

func pool(t *testing.T, files ...string) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || !p.AppendCertsFromPEM(b) {
			t.Fatalf("CA file %s: %v", f, err)
		}
	}
	return p
}

func hostOf(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Host
}

// peer does a fresh handshake with addr and returns the SHA-256 of the
// certificate served.
func peer(t *testing.T, addr string, cfg *tls.Config) (string, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return tlsutil.Fingerprint(conn.ConnectionState().PeerCertificates[0]), nil
}

func TestTLSSelfSigned(t *testing.T) {
	dataDir := t.TempDir()
	s, info := startTLSServer(t, dataDir, "--tls-self-signed")
	caFile := filepath.Join(dataDir, "tls", "cert.pem")
	if !strings.HasPrefix(info.URL, "https://127.0.0.1:") || !strings.HasPrefix(info.GatewayURL, "https://127.0.0.1:") || info.CAFile != caFile {
		t.Fatalf("server.json = %+v", info)
	}
	fp, err := peer(t, hostOf(t, s.url), &tls.Config{RootCAs: pool(t, caFile)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.log.String(), fp) || !strings.Contains(s.log.String(), caFile) {
		t.Errorf("the log does not show the fingerprint %s and the CA file:\n%s", fp, s.log)
	}

	t.Run("CLI finds URL, token and CA in server.json", func(t *testing.T) {
		r := s.cliEnv(t, []string{"MODELSHIP_DATA_DIR=" + dataDir}, "workspace", "list")
		if r.code != 0 || !strings.Contains(r.stdout, modelship.DefaultWorkspace) {
			t.Fatalf("workspace list: %d %s %s", r.code, r.stdout, r.stderr)
		}
	})
	noLocal := "MODELSHIP_DATA_DIR=" + t.TempDir()
	auth := []string{"MODELSHIP_URL=" + s.url, "MODELSHIP_TOKEN=" + s.token, noLocal}
	t.Run("CLI without the CA gets the x509 error", func(t *testing.T) {
		r := s.cliEnv(t, auth, "workspace", "list")
		if r.code == 0 || !strings.Contains(r.stderr, "x509: certificate signed by unknown authority") || !strings.Contains(r.stderr, "--ca-file") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("CLI with --ca-file and MODELSHIP_CA_FILE", func(t *testing.T) {
		if r := s.cliEnv(t, auth, "--ca-file", caFile, "workspace", "list"); r.code != 0 {
			t.Fatalf("--ca-file: %d %s", r.code, r.stderr)
		}
		if r := s.cliEnv(t, append(auth, "MODELSHIP_CA_FILE="+caFile), "workspace", "list"); r.code != 0 {
			t.Fatalf("MODELSHIP_CA_FILE: %d %s", r.code, r.stderr)
		}
		r := s.cliEnv(t, auth, "--ca-file", filepath.Join(dataDir, "missing.pem"), "workspace", "list")
		if r.code == 0 || !strings.Contains(r.stderr, "missing.pem") {
			t.Fatalf("missing CA file: %d %s", r.code, r.stderr)
		}
	})
	t.Run("Go client without the CA", func(t *testing.T) {
		_, err := http.Get(s.url + "/healthz")
		var ua x509.UnknownAuthorityError
		if !errors.As(err, &ua) {
			t.Fatalf("err = %v, want x509.UnknownAuthorityError", err)
		}
	})
	t.Run("plain http to the TLS ports fails", func(t *testing.T) {
		for _, u := range []string{s.url, s.gateway} {
			resp, err := http.Get("http://" + hostOf(t, u) + "/healthz")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					t.Fatalf("plain http to %s: 200 %s", u, b)
				}
			}
		}
	})
	t.Run("TLS 1.2 and 1.3, not 1.1", func(t *testing.T) {
		for _, addr := range []string{hostOf(t, s.url), hostOf(t, s.gateway)} {
			for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool(t, caFile), MinVersion: v, MaxVersion: v})
				if err != nil {
					t.Fatalf("%s TLS %#x: %v", addr, v, err)
				}
				if got := conn.ConnectionState().Version; got != v {
					t.Errorf("%s: negotiated %#x, want %#x", addr, got, v)
				}
				conn.Close()
			}
			_, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool(t, caFile), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
			if err == nil || !strings.Contains(err.Error(), "protocol version") {
				t.Errorf("%s TLS 1.1: %v, want a protocol version alert", addr, err)
			}
		}
	})
	t.Run("gateway serves https", func(t *testing.T) {
		needPython(t)
		s.trustConfig(t, caFile)
		dir := t.TempDir()
		registerDummy(t, s, dir)
		project(t, dir, sumScore, `{"computeType": "aks", "numReplicas": 1, "containerResourceRequirements": {"cpu": 0.1, "memoryInGB": 0.5}}`)
		s.deploy(t, dir, "tlssvc")
		svc := decode[modelship.Service](t, s.ok(t, "service", "show", "tlssvc", "-o", "json"))
		if svc.ScoringURI != s.gateway+"/api/v1/service/tlssvc/score" || !strings.HasPrefix(svc.ScoringURI, "https://") ||
			!strings.HasPrefix(svc.SwaggerURI, "https://") {
			t.Fatalf("scoringUri %q swaggerUri %q, want https on %s", svc.ScoringURI, svc.SwaggerURI, s.gateway)
		}
		keys := s.keys(t, "tlssvc")
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(t, caFile)}}}
		req, _ := http.NewRequest("POST", svc.ScoringURI, strings.NewReader(`{"data": [[1,2,3]]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+keys.PrimaryKey)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"sum": [6]`) {
			t.Fatalf("score over https: %d %s", resp.StatusCode, b)
		}
	})

	// A restart reuses the certificate, so clients' CA files stay valid.
	before, _ := os.ReadFile(caFile)
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	startTLSServer(t, dataDir, "--tls-self-signed")
	if after, _ := os.ReadFile(caFile); !bytes.Equal(before, after) {
		t.Error("the self-signed certificate was not reused across a restart")
	}
}

func TestTLSFlagValidation(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", "c.pem"}, "--tls-key"},
		{[]string{"--tls-key", "k.pem"}, "--tls-cert"},
		{[]string{"--gateway-tls-cert", "c.pem"}, "--gateway-tls-key"},
		{[]string{"--tls-self-signed", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, "--tls-self-signed"},
		{[]string{"--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}, "/nonexistent/c.pem"},
	} {
		args := append([]string{"server", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"}, tc.args...)
		out, err := exec.Command(binPath, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("server %v: %v %s, want an error naming %s", tc.args, err, out, tc.want)
		}
	}
}

// TestTLSCertificateReload rotates the certificate files under a running
// server: new handshakes get the new certificate within ~2 s, and a
// keep-alive connection opened before keeps working.
func TestTLSCertificateReload(t *testing.T) {
	certA, keyA, fpA, err := tlsutil.SelfSigned(nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	certB, keyB, fpB, err := tlsutil.SelfSigned(nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	live := t.TempDir()
	cert, key := filepath.Join(live, "tls.crt"), filepath.Join(live, "tls.key")
	install := func(c, k string) {
		for _, p := range [][2]string{{k, key}, {c, cert}} {
			b, err := os.ReadFile(p[0])
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, p[1]+".tmp", b)
			if err := os.Rename(p[1]+".tmp", p[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(certA, keyA)
	s, info := startTLSServer(t, "", "--tls-cert", cert, "--tls-key", key)
	if info.CAFile != "" {
		t.Errorf("server.json names a CA file for a user certificate: %+v", info)
	}
	trust := &tls.Config{RootCAs: pool(t, certA, certB)}

	// A keep-alive connection made with A.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: trust, MaxConnsPerHost: 1}}
	get := func() (fp string, reused bool) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.url+"/healthz", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused },
		}))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("healthz: %d", resp.StatusCode)
		}
		return tlsutil.Fingerprint(resp.TLS.PeerCertificates[0]), reused
	}
	if fp, _ := get(); fp != fpA {
		t.Fatalf("serving %s, want A %s", fp, fpA)
	}

	install(certB, keyB)
	start := time.Now()
	for _, addr := range []string{hostOf(t, s.url), hostOf(t, s.gateway)} {
		for {
			fp, err := peer(t, addr, trust)
			if err != nil {
				t.Fatalf("handshake during rotation: %v", err)
			}
			if fp == fpB {
				break
			}
			if time.Since(start) > 3*time.Second {
				t.Fatalf("%s still serves A %s after %v\n%s", addr, fp, time.Since(start), s.log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("new handshakes see B after %v", time.Since(start).Round(time.Millisecond))
	if fp, reused := get(); fp != fpA || !reused {
		t.Fatalf("keep-alive connection: cert A=%v reused=%v; the connection made before the rotation was dropped", fp == fpA, reused)
	}
	if !strings.Contains(s.log.String(), "TLS certificate reloaded") {
		t.Errorf("no reload in the log:\n%s", s.log)
	}
	// A broken file keeps B in service.
	writeFile(t, cert, []byte("garbage"))
	time.Sleep(1500 * time.Millisecond)
	if fp, err := peer(t, hostOf(t, s.url), trust); err != nil || fp != fpB {
		t.Fatalf("after a broken certificate file: %v, B=%v", err, fp == fpB)
	}
	if !strings.Contains(s.log.String(), "still serving the previous certificate") {
		t.Errorf("the broken file was not logged:\n%s", s.log)
	}
}

// TestTLSSeparateGatewayCertificate gives the gateway its own pair next to
// the self-signed one of the API.
func TestTLSSeparateGatewayCertificate(t *testing.T) {
	gwCert, gwKey, gwFP, err := tlsutil.SelfSigned(nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, info := startTLSServer(t, "", "--tls-self-signed", "--gateway-tls-cert", gwCert, "--gateway-tls-key", gwKey)
	if fp, err := peer(t, hostOf(t, s.gateway), &tls.Config{RootCAs: pool(t, gwCert)}); err != nil || fp != gwFP {
		t.Fatalf("gateway: %v, own certificate=%v", err, fp == gwFP)
	}
	apiFP, err := peer(t, hostOf(t, s.url), &tls.Config{RootCAs: pool(t, info.CAFile)})
	if err != nil || apiFP == gwFP {
		t.Fatalf("API: %v, serves the gateway's certificate=%v", err, apiFP == gwFP)
	}
}
