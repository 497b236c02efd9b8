// Package auth holds the security primitives of modelship: service keys
// (generation, hashing and constant-time comparison), encryption at rest of
// retrievable secrets with a server master key, and Ed25519-signed access
// tokens (JWT) that the front end verifies with public keys only.
//
// It depends on the standard library and github.com/golang-jwt/jwt/v5 only,
// so both the control plane and the gateway can import it.
package auth
