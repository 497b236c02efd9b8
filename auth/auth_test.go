package auth_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelship/modelship/auth"
)

func TestGenerateKey(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		k, err := auth.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		b, err := base64.RawURLEncoding.DecodeString(k)
		if err != nil || len(b) != auth.KeyBytes {
			t.Fatalf("key %q: %d bytes, err %v", k, len(b), err)
		}
		if seen[k] {
			t.Fatalf("duplicate key %q", k)
		}
		seen[k] = true
	}
}

func TestMatchKeyHash(t *testing.T) {
	primary, secondary := "primary-key", "secondary-key"
	hashes := []string{auth.HashKey(primary), auth.HashKey(secondary)}
	if got := auth.HashKey("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashKey(abc) = %s", got)
	}
	tests := []struct {
		name string
		key  string
		want bool
	}{
		{"Primary", primary, true},
		{"Secondary", secondary, true},
		{"Wrong", "nope", false},
		{"Empty", "", false},
		{"Prefix", "primary-ke", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := auth.MatchKeyHash(tt.key, hashes); got != tt.want {
				t.Fatalf("MatchKeyHash(%q) = %v", tt.key, got)
			}
		})
	}
	if auth.MatchKeyHash(primary, nil) {
		t.Fatal("matched against no hashes")
	}
	if !auth.Equal("a", "a") || auth.Equal("a", "b") || auth.Equal("a", "ab") {
		t.Fatal("Equal")
	}
}

func TestSealer(t *testing.T) {
	mk := make([]byte, 32)
	rand.Read(mk)
	s, err := auth.NewSealer(mk)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal("my secret key")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, "v1:") || strings.Contains(sealed, "my secret") {
		t.Fatalf("sealed = %q", sealed)
	}
	again, _ := s.Seal("my secret key")
	if again == sealed {
		t.Fatal("nonce reused: two seals of one plaintext are equal")
	}
	got, err := s.Open(sealed)
	if err != nil || got != "my secret key" {
		t.Fatalf("Open = %q, %v", got, err)
	}

	other := make([]byte, 32)
	rand.Read(other)
	s2, _ := auth.NewSealer(other)
	raw := []byte(sealed)
	raw[len(raw)-3] ^= 1
	bad := map[string]struct {
		s     *auth.Sealer
		value string
	}{
		"WrongKey":   {s2, sealed},
		"Tampered":   {s, string(raw)},
		"NoVersion":  {s, strings.TrimPrefix(sealed, "v1:")},
		"V2":         {s, "v2:" + strings.TrimPrefix(sealed, "v1:")},
		"Truncated":  {s, sealed[:10]},
		"NotBase64":  {s, "v1:***"},
		"EmptyInput": {s, ""},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := tc.s.Open(tc.value); !errors.Is(err, auth.ErrSealed) {
				t.Fatalf("Open = %v, want ErrSealed", err)
			}
		})
	}
	if _, err := auth.NewSealer(make([]byte, 16)); err == nil {
		t.Fatal("16-byte master key accepted")
	}
}

func TestLoadOrCreateMasterKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "master.key")
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	for i := range keys {
		wg.Go(func() {
			k, err := auth.LoadOrCreateMasterKey(path)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if string(k) != string(keys[0]) || len(k) != 32 {
			t.Fatal("concurrent creators disagree on the master key")
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode().Perm(), err)
	}
	k, err := auth.LoadOrCreateMasterKey(path)
	if err != nil || string(k) != string(keys[0]) {
		t.Fatal("reload changed the key")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("leftover temporary files: %v", entries)
	}
	os.Chmod(path, 0o644)
	if _, err := auth.LoadOrCreateMasterKey(path); err == nil {
		t.Fatal("world-readable master key accepted")
	}
}

func TestTokens(t *testing.T) {
	signer, err := auth.LoadOrCreateSigningKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tok, err := signer.IssueAt("ws/mysvc", 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "Bearer" || !tok.RefreshAfter.Equal(now.Add(12*time.Hour)) || !tok.ExpiryOn.Equal(tok.RefreshAfter.Add(12*time.Hour)) {
		t.Fatalf("token times: %+v", tok)
	}
	keys := signer.PublicKeys()

	// Forged tokens.
	parts := strings.Split(tok.AccessToken, ".")
	tamperedPayload := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"modelship","aud":["ws/other"],"exp":9999999999}`)) + "." + parts[2]
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	tamperedSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	noneTok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.RegisteredClaims{
		Issuer: auth.TokenIssuer, Audience: jwt.ClaimStrings{"ws/mysvc"}, ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	// HMAC keyed with the public key: the classic alg confusion attack.
	hsTok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Issuer: auth.TokenIssuer, Audience: jwt.ClaimStrings{"ws/mysvc"}, ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}).SignedString(keys[0])
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	stranger, _ := auth.NewTokenSigner(strangerKey, nil)
	strangerTok, _ := stranger.IssueAt("ws/mysvc", time.Hour, now)
	futureTok, _ := signer.IssueAt("ws/mysvc", time.Hour, now.Add(time.Hour))

	tests := []struct {
		name     string
		token    string
		audience string
		at       time.Time
		ok       bool
	}{
		{"Valid", tok.AccessToken, "ws/mysvc", now.Add(time.Minute), true},
		{"ValidAfterRefreshBeforeExpiry", tok.AccessToken, "ws/mysvc", now.Add(23 * time.Hour), true},
		{"Expired", tok.AccessToken, "ws/mysvc", now.Add(25 * time.Hour), false},
		{"OtherAudience", tok.AccessToken, "ws/othersvc", now, false},
		{"TamperedPayload", tamperedPayload, "ws/other", now, false},
		{"TamperedSignature", tamperedSig, "ws/mysvc", now, false},
		{"AlgNone", noneTok, "ws/mysvc", now, false},
		{"AlgHS256WithPublicKey", hsTok, "ws/mysvc", now, false},
		{"OtherSigner", strangerTok.AccessToken, "ws/mysvc", now, false},
		{"NotYetValid", futureTok.AccessToken, "ws/mysvc", now, false},
		{"Garbage", "not.a.token", "ws/mysvc", now, false},
		{"Empty", "", "ws/mysvc", now, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := auth.VerifyToken(tt.token, keys, tt.audience, tt.at)
			if tt.ok && err != nil {
				t.Fatalf("VerifyToken: %v", err)
			}
			if !tt.ok && !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("VerifyToken = %v, want ErrInvalidToken", err)
			}
		})
	}
	if err := auth.VerifyToken(tok.AccessToken, nil, "ws/mysvc", now); err == nil {
		t.Fatal("verified with no keys")
	}
}

func TestRotate(t *testing.T) {
	dir := t.TempDir()
	signer, err := auth.LoadOrCreateSigningKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	before, _ := signer.IssueAt("aud", time.Hour, now)
	if err := signer.Rotate(); err != nil {
		t.Fatal(err)
	}
	after, _ := signer.IssueAt("aud", time.Hour, now)
	keys := signer.PublicKeys()
	if len(keys) != 2 {
		t.Fatalf("%d public keys after rotation, want 2", len(keys))
	}
	for name, tok := range map[string]string{"Before": before.AccessToken, "After": after.AccessToken} {
		if err := auth.VerifyToken(tok, keys, "aud", now); err != nil {
			t.Fatalf("%s rotation: %v", name, err)
		}
	}
	// Only the new key: the old token no longer verifies.
	if err := auth.VerifyToken(before.AccessToken, keys[:1], "aud", now); err == nil {
		t.Fatal("pre-rotation token verified with the new key only")
	}
	// The keys survive a restart.
	reloaded, err := auth.LoadOrCreateSigningKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	rk := reloaded.PublicKeys()
	if len(rk) != 2 || string(rk[0]) != string(keys[0]) || string(rk[1]) != string(keys[1]) {
		t.Fatal("reloaded keys differ")
	}
	// A second rotation forgets the first key.
	signer.Rotate()
	if err := auth.VerifyToken(before.AccessToken, signer.PublicKeys(), "aud", now); err == nil {
		t.Fatal("token from two rotations ago still verifies")
	}
	fi, _ := os.Stat(filepath.Join(dir, "token-signing-current.pem"))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key mode %v", fi.Mode().Perm())
	}
}

func BenchmarkVerifyToken(b *testing.B) {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := auth.NewTokenSigner(k, nil)
	tok, _ := s.Issue("aud", time.Hour)
	keys := s.PublicKeys()
	now := time.Now()
	for b.Loop() {
		if err := auth.VerifyToken(tok.AccessToken, keys, "aud", now); err != nil {
			b.Fatal(err)
		}
	}
}
