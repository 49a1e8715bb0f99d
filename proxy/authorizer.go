package proxy

import (
	"context"
	"net/http"
)

// Authorizer supplies the bearer token for one upstream and handles the
// upstream's authorization challenges. The oauth package's Handler
// implements it; a server with OAuth turned off has none.
//
// Implementations must be safe for concurrent use.
type Authorizer interface {
	// Token returns the access token to send upstream, or "" when there is
	// none yet (the request then goes out without Authorization and the
	// upstream's 401 starts the flow). It is called for every request, so
	// it must not touch the keychain or wait on a login in progress; it may
	// refresh a token that is about to expire.
	Token(ctx context.Context) (string, error)

	// Challenge is called when the upstream answered a request that was
	// sent with token sent ("" for none) with res: a 401, or a 403 whose
	// WWW-Authenticate carries error="insufficient_scope". It refreshes the
	// token or runs the login (shared with every other caller waiting on the
	// same identity) and reports whether the request should be sent again
	// with a new Token. It returns when that is decided or ctx is done; a
	// login keeps running after ctx ends. res's headers may be read; its
	// body belongs to the caller.
	//
	// When a login is pending or has timed out, the error implements
	// interface{ LoginURL() string }, so the client can be shown the link.
	Challenge(ctx context.Context, res *http.Response, sent string) (retry bool, err error)
}
