package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token lifetime. Azure's SDK says a token stays valid 12 hours past its
// refresh time; modelship issues tokens whose refresh time is half their
// lifetime, so the default lifetime of 24 h reproduces Azure exactly:
// RefreshAfter = issue + 12 h, ExpiryOn = RefreshAfter + 12 h.
const (
	DefaultTokenTTL = 24 * time.Hour
	// TokenIssuer is the "iss" claim of every token.
	TokenIssuer = "modelship"
	// TokenLeeway tolerates clock skew between the control plane that
	// signs and the front end that verifies, on both exp and nbf.
	TokenLeeway = 30 * time.Second
)

// Signing key file names inside the directory given to
// LoadOrCreateSigningKeys (PKCS#8 PEM, mode 0600).
const (
	currentKeyFile  = "token-signing-current.pem"
	previousKeyFile = "token-signing-previous.pem"
)

// ErrInvalidToken is wrapped by every error VerifyToken returns.
var ErrInvalidToken = errors.New("invalid access token")

// Token is an issued access token, with Azure's field names
// (AksServiceAccessToken).
type Token struct {
	AccessToken  string    `json:"accessToken"`
	TokenType    string    `json:"tokenType"` // always "Bearer"
	RefreshAfter time.Time `json:"refreshAfter"`
	ExpiryOn     time.Time `json:"expiryOn"`
}

// TokenSigner signs access tokens with the current Ed25519 key and keeps
// the previous one so tokens signed before a rotation keep verifying until
// they expire. It is safe for concurrent use. Keys live in a directory when
// created by LoadOrCreateSigningKeys, in memory when created by
// NewTokenSigner.
type TokenSigner struct {
	dir string // "" for an in-memory signer

	mu       sync.RWMutex
	current  ed25519.PrivateKey
	previous ed25519.PrivateKey // nil before the first rotation
}

// NewTokenSigner returns an in-memory signer. previous may be nil.
func NewTokenSigner(current, previous ed25519.PrivateKey) (*TokenSigner, error) {
	if len(current) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("current signing key is %d bytes, want %d", len(current), ed25519.PrivateKeySize)
	}
	if previous != nil && len(previous) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("previous signing key is %d bytes, want %d", len(previous), ed25519.PrivateKeySize)
	}
	return &TokenSigner{current: current, previous: previous}, nil
}

// LoadOrCreateSigningKeys loads the current and previous signing keys from
// dir, creating the directory (0700) and a current key (0600) if missing.
func LoadOrCreateSigningKeys(dir string) (*TokenSigner, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating signing key directory: %w", err)
	}
	s := &TokenSigner{dir: dir}
	prev, err := readPrivateKey(filepath.Join(dir, previousKeyFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	s.previous = prev
	cur, err := readPrivateKey(filepath.Join(dir, currentKeyFile))
	switch {
	case err == nil:
		s.current = cur
	case errors.Is(err, fs.ErrNotExist):
		// First start, or a crash in the middle of Rotate (the old
		// current key is already the previous one): make a new one.
		_, cur, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, fmt.Errorf("generating signing key: %w", gerr)
		}
		if err := writePrivateKey(dir, currentKeyFile, cur, true); err != nil {
			if !errors.Is(err, fs.ErrExist) {
				return nil, err
			}
			// Another process created it first: use that one.
			if cur, err = readPrivateKey(filepath.Join(dir, currentKeyFile)); err != nil {
				return nil, err
			}
		}
		s.current = cur
	default:
		return nil, err
	}
	return s, nil
}

// Rotate makes a new current key; the current key becomes the previous one
// and the old previous key is forgotten, so tokens it signed stop
// verifying. Rotate should run no more often than the token lifetime.
func (s *TokenSigner) Rotate() error {
	_, next, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generating signing key: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir != "" {
		// Order matters for crash safety: previous first, then current.
		if err := writePrivateKey(s.dir, previousKeyFile, s.current, false); err != nil {
			return err
		}
		if err := writePrivateKey(s.dir, currentKeyFile, next, false); err != nil {
			return err
		}
	}
	s.previous, s.current = s.current, next
	return nil
}

// PublicKeys returns the raw 32-byte public keys, current first, then the
// previous one if any: the value for RouteTable.TokenPublicKeys.
func (s *TokenSigner) PublicKeys() [][]byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := [][]byte{append([]byte(nil), s.current.Public().(ed25519.PublicKey)...)}
	if s.previous != nil {
		keys = append(keys, append([]byte(nil), s.previous.Public().(ed25519.PublicKey)...))
	}
	return keys
}

// Issue signs a token for audience valid for ttl (DefaultTokenTTL if ttl
// is not positive), issued now.
func (s *TokenSigner) Issue(audience string, ttl time.Duration) (Token, error) {
	return s.IssueAt(audience, ttl, time.Now())
}

// IssueAt is Issue with an explicit issue time.
func (s *TokenSigner) IssueAt(audience string, ttl time.Duration, now time.Time) (Token, error) {
	if audience == "" {
		return Token{}, errors.New("issuing token: empty audience")
	}
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	now = now.Truncate(time.Second) // JWT times have second precision
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return Token{}, fmt.Errorf("issuing token: %w", err)
	}
	exp := now.Add(ttl)
	claims := jwt.RegisteredClaims{
		Issuer:    TokenIssuer,
		Audience:  jwt.ClaimStrings{audience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
		ID:        base64.RawURLEncoding.EncodeToString(jti),
	}
	s.mu.RLock()
	key := s.current
	s.mu.RUnlock()
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = KeyID(key.Public().(ed25519.PublicKey))
	signed, err := t.SignedString(key)
	if err != nil {
		return Token{}, fmt.Errorf("signing token: %w", err)
	}
	return Token{
		AccessToken:  signed,
		TokenType:    "Bearer",
		RefreshAfter: now.Add(ttl / 2),
		ExpiryOn:     exp,
	}, nil
}

// KeyID is the "kid" header naming a public key: the first 8 bytes of its
// SHA-256, hex.
func KeyID(pub []byte) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// VerifyToken checks token against the raw Ed25519 publicKeys: the
// signature (only alg EdDSA is accepted, so "none" and HMAC confusion are
// refused), exp (required), nbf, and that aud contains audience. now is the
// verification time; TokenLeeway applies to exp and nbf. Every error wraps
// ErrInvalidToken.
func VerifyToken(token string, publicKeys [][]byte, audience string, now time.Time) error {
	if audience == "" {
		return fmt.Errorf("%w: no audience to check", ErrInvalidToken)
	}
	var keys []jwt.VerificationKey
	for _, k := range publicKeys {
		if len(k) == ed25519.PublicKeySize {
			keys = append(keys, ed25519.PublicKey(k))
		}
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: no verification keys", ErrInvalidToken)
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(TokenLeeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithIssuer(TokenIssuer),
	)
	_, err := p.ParseWithClaims(token, &jwt.RegisteredClaims{}, func(t *jwt.Token) (any, error) {
		// Try the key the header names first; fall back to all of them.
		if kid, ok := t.Header["kid"].(string); ok {
			for _, k := range keys {
				if KeyID(k.(ed25519.PublicKey)) == kid {
					return k, nil
				}
			}
		}
		return jwt.VerificationKeySet{Keys: keys}, nil
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return nil
}

func readPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading signing key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: no PKCS#8 PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s is %T, want Ed25519", path, k)
	}
	return ek, nil
}

// writePrivateKey writes key as PKCS#8 PEM to dir/name (0600) atomically:
// exclusive creation (error wraps fs.ErrExist) or replacement by rename.
func writePrivateKey(dir, name string, key ed25519.PrivateKey, exclusive bool) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding signing key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	path := filepath.Join(dir, name)
	if exclusive {
		if err := createExclusive(path, data); err != nil {
			return fmt.Errorf("writing signing key: %w", err)
		}
		return nil
	}
	tmp, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return fmt.Errorf("writing signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
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
		return fmt.Errorf("writing signing key: %w", err)
	}
	return nil
}
