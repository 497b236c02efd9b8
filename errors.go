// Package modelship holds the domain of the modelship platform: workspaces,
// registered models and their versions, the errors every layer speaks, and
// the small interfaces that adapters (stores, artifact stores, compute
// drivers, runtimes) implement. It imports only the standard library.
package modelship

import (
	"errors"
	"fmt"
)

// Error codes. Every layer returns *Error values carrying one of these codes;
// the HTTP layer maps them to status codes and the client maps them back, so
// a code survives the wire.
const (
	EINVALID      = "invalid"      // bad input: 400
	EUNAUTHORIZED = "unauthorized" // missing or wrong credentials: 401
	EFORBIDDEN    = "forbidden"    // authenticated but not allowed: 403
	ENOTFOUND     = "not_found"    // unknown object: 404
	ECONFLICT     = "conflict"     // state conflict (exists, in use, busy): 409
	ETOOLARGE     = "too_large"    // body over the configured limit: 413
	EUNSUPPORTED  = "unsupported"  // unsupported media type: 415
	EINTERNAL     = "internal"     // anything else: 500
	EUNAVAILABLE  = "unavailable"  // temporarily unable: 503
	ECANCELED     = "canceled"     // request canceled by the caller
)

// Error is the one error type of the domain. Message is meant for the user:
// it names the field or value at fault and says what is allowed.
type Error struct {
	Code    string
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of the first *Error in err's
// chain, or a generic text for other errors (their details stay in the logs).
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
