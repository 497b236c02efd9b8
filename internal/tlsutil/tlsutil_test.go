package tlsutil

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pair makes a self-signed pair in a new directory and returns its files
// and fingerprint.
func pair(t *testing.T, hosts ...string) (certFile, keyFile, fp string) {
	t.Helper()
	c, k, fp, err := SelfSigned(hosts, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c, k, fp
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(to, b); err != nil {
		t.Fatal(err)
	}
}

func served(r *Reloader) string {
	c, _ := r.GetCertificate(nil)
	return Fingerprint(c.Leaf)
}

func TestReloaderSwapsAndKeepsOldOnBadFiles(t *testing.T) {
	dir := t.TempDir()
	certA, keyA, fpA := pair(t)
	certB, keyB, fpB := pair(t)
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	copyFile(t, certA, cert)
	copyFile(t, keyA, key)
	var logs bytes.Buffer
	r, err := newReloader(cert, key, slog.New(slog.NewTextHandler(&logs, nil)), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if served(r) != fpA {
		t.Fatal("not serving A")
	}
	if r.Check() {
		t.Fatal("Check reloaded unchanged files")
	}
	// Half a rotation: B's certificate with A's key does not load.
	copyFile(t, certB, cert)
	if r.Check() || served(r) != fpA {
		t.Fatal("a mismatched pair replaced the certificate")
	}
	if !strings.Contains(logs.String(), "still serving the previous certificate") {
		t.Fatalf("no error logged: %s", logs.String())
	}
	copyFile(t, keyB, key)
	if !r.Check() || served(r) != fpB {
		t.Fatal("B not served after the rotation completed")
	}
	// Garbage and a missing file keep B.
	if err := os.WriteFile(cert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r.Check() || served(r) != fpB {
		t.Fatal("garbage replaced the certificate")
	}
	os.Remove(key)
	if r.Check() || served(r) != fpB {
		t.Fatal("a missing key replaced the certificate")
	}
	copyFile(t, certA, cert)
	copyFile(t, keyA, key)
	if !r.Check() || served(r) != fpA {
		t.Fatal("A not served again")
	}
}

func TestReloaderWatches(t *testing.T) {
	dir := t.TempDir()
	certA, keyA, _ := pair(t)
	certB, keyB, fpB := pair(t)
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	copyFile(t, certA, cert)
	copyFile(t, keyA, key)
	r, err := newReloader(cert, key, nil, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, keyB, key)
	copyFile(t, certB, cert)
	deadline := time.Now().Add(2 * time.Second)
	for served(r) != fpB {
		if time.Now().After(deadline) {
			t.Fatal("watcher did not pick up the new pair")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.Close()
	r.Close() // idempotent
}

func TestNewReloaderErrorsNameTheFile(t *testing.T) {
	cert, key, _ := pair(t)
	missing := filepath.Join(t.TempDir(), "nope.pem")
	for _, tc := range []struct{ cert, key, want string }{
		{missing, key, "nope.pem"},
		{cert, missing, "nope.pem"},
		{key, key, key},
	} {
		_, err := NewReloader(tc.cert, tc.key, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewReloader(%s, %s) = %v, want an error naming %s", tc.cert, tc.key, err, tc.want)
		}
	}
}

func TestSelfSignedReusedAndRenewedForNewHosts(t *testing.T) {
	dir := t.TempDir()
	c1, k1, fp1, err := SelfSigned(nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(k1); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	_, _, fp2, err := SelfSigned([]string{"localhost"}, dir)
	if err != nil || fp2 != fp1 {
		t.Fatalf("not reused: %v %s %s", err, fp1, fp2)
	}
	_, _, fp3, err := SelfSigned([]string{"ms.example", "10.1.2.3"}, dir)
	if err != nil || fp3 == fp1 {
		t.Fatalf("not regenerated for new hosts: %v", err)
	}
	leaf, err := loadPair(c1, k1)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"127.0.0.1", "::1", "localhost", "ms.example", "10.1.2.3"} {
		if err := leaf.Leaf.VerifyHostname(h); err != nil {
			t.Errorf("certificate not valid for %s: %v", h, err)
		}
	}
	if fp := Fingerprint(leaf.Leaf); fp != fp3 || len(fp) != 32*3-1 {
		t.Errorf("fingerprint %s, want %s", fp, fp3)
	}
}

// handshake connects to a TLS server using r with the client config and
// returns the negotiated version.
func handshake(t *testing.T, r *Reloader, client *tls.Config) (uint16, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(r))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ConnectionState().Version, nil
}

func TestServerAndClientConfig(t *testing.T) {
	cert, key, _ := pair(t)
	r, err := NewReloader(cert, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cc, err := ClientConfig(cert)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c := cc.Clone()
		c.MinVersion, c.MaxVersion = v, v
		if got, err := handshake(t, r, c); err != nil || got != v {
			t.Errorf("TLS %x: version %x, %v", v, got, err)
		}
	}
	old := cc.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if _, err := handshake(t, r, old); err == nil {
		t.Error("TLS 1.1 handshake succeeded")
	}
	// Verification is on by default: without the CA the handshake fails.
	plain, _ := ClientConfig("")
	_, err = handshake(t, r, plain)
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Errorf("without the CA: %v, want x509.UnknownAuthorityError", err)
	}
}

func TestClientConfigErrors(t *testing.T) {
	_, err := ClientConfig(filepath.Join(t.TempDir(), "ca.pem"))
	if err == nil || !strings.Contains(err.Error(), "ca.pem") {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("hello"), 0o600)
	if _, err := ClientConfig(bad); err == nil || !strings.Contains(err.Error(), "bad.pem") {
		t.Errorf("no certificate: %v", err)
	}
}
