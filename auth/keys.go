package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// KeyBytes is the entropy of a generated service key in bytes.
const KeyBytes = 32

// GenerateKey returns a new service key: 32 bytes from crypto/rand encoded
// as unpadded URL-safe base64 (43 characters), so it can travel in an
// Authorization header or a URL without escaping.
func GenerateKey() (string, error) {
	b := make([]byte, KeyBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating service key: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashKey returns the lower-case hex SHA-256 digest of key. The front end
// only ever sees these digests, never the keys.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Equal reports whether a and b are equal, in time that depends only on
// their lengths, not on their contents.
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// MatchKeyHash reports whether key hashes to one of hashes (hex SHA-256
// digests as produced by HashKey). Every digest is compared, in constant
// time, whether or not an earlier one matched.
func MatchKeyHash(key string, hashes []string) bool {
	got := HashKey(key)
	match := 0
	for _, h := range hashes {
		match |= subtle.ConstantTimeCompare([]byte(got), []byte(h))
	}
	return match == 1
}
