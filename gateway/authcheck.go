package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/auth"
)

// maxCachedTokens bounds the verified-token cache; past it the cache is
// emptied and refills with the tokens in use.
const maxCachedTokens = 10000

// authenticate checks the Authorization header against the route's auth
// mode. It fails closed: an unknown mode refuses every request.
func (g *Gateway) authenticate(t *table, rt *route, header string) bool {
	switch rt.auth {
	case modelship.AuthNone:
		return true
	case modelship.AuthKey, modelship.AuthToken:
	default:
		return false
	}
	cred, ok := bearer(header)
	if !ok {
		return false
	}
	if rt.auth == modelship.AuthKey {
		sum := sha256.Sum256([]byte(cred))
		match := 0
		for i := range rt.keyHashes {
			match |= subtle.ConstantTimeCompare(sum[:], rt.keyHashes[i][:])
		}
		return match == 1
	}
	return g.tokens.verify(cred, t, rt.audience, g.now())
}

// bearer extracts the credential of "Bearer <credential>" (scheme
// case-insensitive).
func bearer(h string) (string, bool) {
	const p = "bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	c := strings.TrimSpace(h[len(p):])
	return c, c != ""
}

// tokenCache remembers tokens that verified, so the Ed25519 check (about
// 130 µs) runs once per token rather than once per request. An entry is
// used only for the same audience and the same set of public keys, and
// only until the token's expiry (plus the verification leeway); a cached
// token was valid when cached and time only moves on, so nbf needs no
// re-check. The key is the whole token, so a tampered token never hits.
type tokenCache struct {
	m sync.Map // string -> tokenEntry
	n atomic.Int64
}

type tokenEntry struct {
	audience string
	keysID   string
	until    time.Time
}

func (c *tokenCache) verify(token string, t *table, audience string, now time.Time) bool {
	if e, ok := c.m.Load(token); ok {
		ent := e.(tokenEntry)
		if ent.audience == audience && ent.keysID == t.keysID && now.Before(ent.until) {
			return true
		}
	}
	if auth.VerifyToken(token, t.pubKeys, audience, now) != nil {
		return false
	}
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err != nil || claims.ExpiresAt == nil {
		return true // verified, just not cacheable
	}
	if c.n.Add(1) > maxCachedTokens {
		c.m.Range(func(k, _ any) bool { c.m.Delete(k); return true })
		c.n.Store(1)
	}
	c.m.Store(token, tokenEntry{audience: audience, keysID: t.keysID, until: claims.ExpiresAt.Add(auth.TokenLeeway)})
	return true
}
