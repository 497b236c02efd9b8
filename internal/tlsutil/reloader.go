// Package tlsutil holds the TLS plumbing of modelship: a certificate that
// reloads itself when its files change, a self-signed certificate for
// development, and the server and client tls.Config values.
package tlsutil

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PollInterval is how often a Reloader looks at its files.
const PollInterval = time.Second

// Reloader serves a certificate and key pair read from PEM files and swaps
// in a new pair when either file changes (checked every PollInterval).
// Handshakes in progress and established connections keep the certificate
// they started with; new handshakes get the new one. A new pair that does
// not load (half-written, mismatched key) is logged and ignored: the old
// certificate stays in use until the files change again.
type Reloader struct {
	certFile, keyFile string
	log               *slog.Logger

	cert atomic.Pointer[tls.Certificate]

	mu   sync.Mutex // guards seen
	seen [2]os.FileInfo

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewReloader loads certFile and keyFile and starts watching them; call
// Close to stop. The error names the file that does not load.
func NewReloader(certFile, keyFile string, log *slog.Logger) (*Reloader, error) {
	return newReloader(certFile, keyFile, log, PollInterval)
}

func newReloader(certFile, keyFile string, log *slog.Logger, every time.Duration) (*Reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	r.seen = r.stat()
	cert, err := loadPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.cert.Store(cert)
	r.log.Info("TLS certificate loaded", certAttrs(cert, certFile)...)
	go r.watch(every)
	return r, nil
}

// GetCertificate returns the current certificate; use it as
// tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// Certificate returns the current certificate.
func (r *Reloader) Certificate() *tls.Certificate { return r.cert.Load() }

// Close stops watching the files. The last certificate stays served.
func (r *Reloader) Close() error {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	return nil
}

func (r *Reloader) watch(every time.Duration) {
	defer close(r.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.Check()
		}
	}
}

// Check reloads the pair if either file changed since the last look (other
// inode, size or modification time) and reports whether a new certificate
// is now served. The watcher calls it every PollInterval.
func (r *Reloader) Check() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.stat()
	if sameFile(now[0], r.seen[0]) && sameFile(now[1], r.seen[1]) {
		return false
	}
	r.seen = now
	cert, err := loadPair(r.certFile, r.keyFile)
	if err != nil {
		// Often a rotation caught half way (cert written, key not yet):
		// the key's change will trigger another attempt.
		r.log.Error("TLS certificate files changed but do not load; still serving the previous certificate", "err", err)
		return false
	}
	r.cert.Store(cert)
	r.log.Info("TLS certificate reloaded", certAttrs(cert, r.certFile)...)
	return true
}

func (r *Reloader) stat() [2]os.FileInfo {
	var out [2]os.FileInfo
	for i, f := range []string{r.certFile, r.keyFile} {
		out[i], _ = os.Stat(f) // nil when missing: a change once it comes back
	}
	return out
}

func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// loadPair reads a PEM certificate (chain) and key; the error names the
// file at fault.
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("reading TLS certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("reading TLS key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading TLS certificate %s with key %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parsing TLS certificate %s: %w", certFile, err)
		}
	}
	return &cert, nil
}

func certAttrs(c *tls.Certificate, file string) []any {
	return []any{"file", file, "subject", c.Leaf.Subject.String(), "not_after", c.Leaf.NotAfter.Format(time.RFC3339),
		"sha256", Fingerprint(c.Leaf)}
}

// Fingerprint is the SHA-256 of the certificate's DER bytes, as colon
// separated upper-case hex (the form `openssl x509 -fingerprint -sha256`
// prints).
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	var b strings.Builder
	for i, x := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", x)
	}
	return b.String()
}
