package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Self-signed certificates live this long and are replaced when less than
// selfSignedRenew of their life is left.
const (
	selfSignedLifetime = 365 * 24 * time.Hour
	selfSignedRenew    = 30 * 24 * time.Hour
)

// SelfSigned returns a self-signed ECDSA P-256 certificate for 127.0.0.1,
// ::1, localhost and hosts (names or IPs), stored as dir/cert.pem and
// dir/key.pem (mode 0600). An existing pair is reused when it loads, covers
// every host and is valid for 30 more days; otherwise a new one is written.
// The certificate is its own CA: clients trust it with certFile as their CA
// file. fingerprint is its SHA-256 (see Fingerprint).
func SelfSigned(hosts []string, dir string) (certFile, keyFile, fingerprint string, err error) {
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	hosts = append([]string{"127.0.0.1", "::1", "localhost"}, hosts...)
	if c, err := loadPair(certFile, keyFile); err == nil && covers(c.Leaf, hosts) &&
		time.Until(c.Leaf.NotAfter) > selfSignedRenew {
		return certFile, keyFile, Fingerprint(c.Leaf), nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", "", fmt.Errorf("creating TLS dir: %w", err)
	}
	certPEM, keyPEM, leaf, err := generate(hosts)
	if err != nil {
		return "", "", "", err
	}
	// Key first: a reader that sees the new certificate finds its key.
	if err := writeAtomic(keyFile, keyPEM); err != nil {
		return "", "", "", err
	}
	if err := writeAtomic(certFile, certPEM); err != nil {
		return "", "", "", err
	}
	return certFile, keyFile, Fingerprint(leaf), nil
}

// covers reports whether c is valid for every host.
func covers(c *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(c.DNSNames, h) {
			return false
		}
	}
	return true
}

func generate(hosts []string) (certPEM, keyPEM []byte, leaf *x509.Certificate, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"modelship"}, CommonName: "modelship self-signed"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if h != "" && !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating self-signed certificate: %w", err)
	}
	leaf, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, leaf, nil
}

// writeAtomic writes data to path (mode 0600) through a temporary file and
// a rename, so readers see the old or the new content, never a mix.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
