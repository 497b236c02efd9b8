package auth

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MasterKeyBytes is the size of a master key: AES-256.
const MasterKeyBytes = 32

// sealPrefix versions the sealed format: "v1:" then unpadded URL-safe
// base64 of nonce || AES-256-GCM ciphertext+tag. A future format gets a new
// prefix and Open keeps reading the old one.
const sealPrefix = "v1:"

// ErrSealed is returned (wrapped) by Open for any value it cannot decrypt:
// wrong master key, tampered or truncated ciphertext, unknown version.
var ErrSealed = errors.New("sealed value cannot be opened")

// Sealer encrypts secrets at rest (the retrievable service keys) with a
// server master key. It is safe for concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer using masterKey, which must be 32 bytes.
func NewSealer(masterKey []byte) (*Sealer, error) {
	if len(masterKey) != MasterKeyBytes {
		return nil, fmt.Errorf("master key is %d bytes, want %d", len(masterKey), MasterKeyBytes)
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("creating AES cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("creating GCM: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext with a fresh random nonce and returns the
// versioned, printable form ("v1:...").
func (s *Sealer) Seal(plaintext string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("generating nonce: %w", err)
	}
	out := s.aead.Seal(nonce, nonce, []byte(plaintext), []byte(sealPrefix))
	return sealPrefix + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts a value produced by Seal. Any failure wraps ErrSealed.
func (s *Sealer) Open(sealed string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return "", fmt.Errorf("%w: unknown format version", ErrSealed)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrSealed, err)
	}
	ns := s.aead.NonceSize()
	if len(raw) < ns+s.aead.Overhead() {
		return "", fmt.Errorf("%w: too short", ErrSealed)
	}
	plain, err := s.aead.Open(nil, raw[:ns], raw[ns:], []byte(sealPrefix))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrSealed, err)
	}
	return string(plain), nil
}

// LoadOrCreateMasterKey reads the master key stored hex-encoded at path, or
// creates it with 32 random bytes if the file does not exist. Creation is
// atomic: the key is written to a temporary file (mode 0600) in the same
// directory and hard-linked into place, so concurrent callers all end up
// with the same key and no reader ever sees a partial file. An existing key
// file readable by group or others is refused.
func LoadOrCreateMasterKey(path string) ([]byte, error) {
	key, err := readMasterKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating master key directory: %w", err)
	}
	key = make([]byte, MasterKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generating master key: %w", err)
	}
	if err := createExclusive(path, []byte(hex.EncodeToString(key)+"\n")); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process won the race: use its key.
			return readMasterKey(path)
		}
		return nil, fmt.Errorf("writing master key: %w", err)
	}
	return key, nil
}

func readMasterKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading master key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key %s has mode %v: it must not be accessible to group or others (chmod 600)", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading master key: %w", err)
	}
	key, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(key) != MasterKeyBytes {
		return nil, fmt.Errorf("master key %s is not %d hex-encoded bytes", path, MasterKeyBytes)
	}
	return key, nil
}

// createExclusive writes data to path atomically and only if path does not
// exist yet (the error then wraps fs.ErrExist).
func createExclusive(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}
