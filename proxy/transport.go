package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/wire"
)

const (
	// maxAuthReplays bounds the replays after a 401: the first follows the
	// Authorizer's refresh or login; a second is made only if the replay
	// was refused too and the Authorizer came up with yet another token.
	maxAuthReplays = 2

	// maxStepUps bounds the replays after a 403 insufficient_scope.
	maxStepUps = 3

	// streamedChallengeWait is how long a request whose body could not be
	// buffered waits on the Authorizer: long enough to start the login and
	// learn its link, which the client is then shown.
	streamedChallengeWait = 2 * time.Second

	// maxHeldBody is how much of a refused response is read into memory
	// while the Authorizer works, so the upstream connection is not held
	// through a login.
	maxHeldBody = 64 << 10
)

// authTransport adds the bearer token to upstream requests and, on a 401 or
// a 403 insufficient_scope, lets the Authorizer refresh or log in, then
// replays the request. The client has been sent nothing yet at that point, so
// the replay is invisible to it. Concurrent requests are not serialised: the
// Authorizer shares one flow among them. The rules:
//   - a request is replayed only with a token other than the one refused;
//   - at most maxAuthReplays replays follow 401s and maxStepUps follow 403s;
//     past that, or when Challenge reports no retry, the upstream's last
//     answer goes to the client as it is (status, headers, body);
//   - a Challenge error is answered with the upstream's status and a JSON-RPC
//     error naming the login link, if the error has one;
//   - a request whose body was too large to buffer cannot be replayed: the
//     flow is started and the client gets an error with the login link.
type authTransport struct {
	base     http.RoundTripper
	auth     Authorizer // nil: no OAuth
	upstream string     // upstream URL for messages
	log      *slog.Logger
	bearer   atomic.Pointer[bearer] // the last token's header value
}

// bearer is a token and its Authorization header value, made once per token
// rather than once per request. The value is shared by the requests sent
// with that token: nothing changes a header value in place (replays replace
// the header), and its capacity is its length, so an append copies it.
type bearer struct {
	token string
	value []string
}

// authorization returns the Authorization header value for tok.
func (t *authTransport) authorization(tok string) []string {
	if b := t.bearer.Load(); b != nil && b.token == tok {
		return b.value
	}
	b := &bearer{token: tok, value: []string{"Bearer " + tok}}
	t.bearer.Store(b)
	return b.value
}

// RoundTrip sends req with the token and returns the answer unless the
// upstream asks for authorization; authorize handles that. It is kept
// small: the request is sent from here, and each frame on that path adds
// to the stack that an open stream keeps.
func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.auth == nil {
		return t.base.RoundTrip(req)
	}
	// req is ReverseProxy's own copy of the client's request, made for this
	// round trip, so the token goes straight into it; copying it again cost
	// a sixth of the proxy's garbage. Replays send copies, with the
	// Authorization req came with unless there is a token.
	origAuth := req.Header["Authorization"]
	var tok string
	if s := sentFrom(req.Context()); s != nil {
		tok = s.token // the fast path sent it with this one
	} else {
		tok = t.token(req.Context())
	}
	if tok != "" {
		req.Header["Authorization"] = t.authorization(tok)
	}
	res, err := t.base.RoundTrip(req)
	if err != nil || !challenged(res) {
		return res, err
	}
	return t.authorize(req, res, tok, origAuth)
}

// challenged reports whether res asks for authorization: a 401, or a 403
// insufficient_scope.
func challenged(res *http.Response) bool {
	return res.StatusCode == http.StatusUnauthorized ||
		res.StatusCode == http.StatusForbidden && insufficientScope(res.Header)
}

// authorize lets the Authorizer act on res, the upstream's refusal of req
// sent with tok, and replays req while the rules above allow. origAuth is
// the Authorization header req came with (nil for none).
func (t *authTransport) authorize(req *http.Request, res *http.Response, tok string, origAuth []string) (*http.Response, error) {
	ctx := req.Context()
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	var replays, stepUps int
	for {
		stepUp := res.StatusCode == http.StatusForbidden
		if !replayable {
			return t.cannotReplay(ctx, res, tok)
		}
		if stepUp && stepUps == maxStepUps || !stepUp && replays == maxAuthReplays {
			t.log.Warn("upstream still refuses the request after re-authorization; passing its answer on",
				"status", res.StatusCode, "step-ups", stepUps, "replays", replays)
			return res, nil
		}
		holdBody(res)
		t.log.Debug("upstream asks for authorization; holding the request", "status", res.StatusCode, "path", req.URL.Path)
		retry, err := t.auth.Challenge(ctx, res, tok)
		if err != nil {
			discard(res.Body)
			if ctx.Err() != nil {
				return nil, ctx.Err() // the client went away or the proxy is shutting down
			}
			return nil, &authError{status: res.StatusCode, msg: "authorization for " + t.upstream + " failed", err: err}
		}
		if !retry {
			return res, nil
		}
		next := t.token(ctx)
		if next == tok {
			// The same token would be refused again.
			return res, nil
		}
		discard(res.Body)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		tok = next
		if stepUp {
			stepUps++
		} else {
			replays++
		}
		t.log.Debug("replaying the request with a new token", "path", req.URL.Path)
		out := req.Clone(wire.WithReplay(ctx))
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			out.Body = body
		}
		delete(out.Header, "Authorization")
		if origAuth != nil {
			out.Header["Authorization"] = origAuth
		}
		if tok != "" {
			out.Header.Set("Authorization", "Bearer "+tok)
		}
		if res, err = t.base.RoundTrip(out); err != nil {
			return nil, err
		}
		if !challenged(res) {
			return res, nil
		}
	}
}

// token returns the token to send, or "" for none. An Authorizer error is
// logged and the request goes out without a token: the upstream's 401 then
// leads to Challenge, which can log in again.
func (t *authTransport) token(ctx context.Context) string {
	tok, err := t.auth.Token(ctx)
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("no token available; sending the request without one", "err", err)
		}
		return ""
	}
	return tok
}

// cannotReplay handles a refusal of a request whose body was too large to
// buffer: it starts the Authorizer's flow, waiting only briefly so the login
// link is known, and returns the error the client is shown. When the
// Authorizer would not retry anyway, the upstream's answer goes to the
// client as it would for any other request.
func (t *authTransport) cannotReplay(ctx context.Context, res *http.Response, sent string) (*http.Response, error) {
	holdBody(res)
	cctx, cancel := context.WithTimeout(ctx, streamedChallengeWait)
	defer cancel()
	retry, err := t.auth.Challenge(cctx, res, sent)
	if err == nil && !retry && ctx.Err() == nil {
		return res, nil
	}
	discard(res.Body)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	msg := "the upstream " + t.upstream + " asks for authorization, but the request body is too large to be held and sent again"
	switch {
	case err == nil:
		msg += "; the token has been renewed: send the request again"
	case loginURL(err) != "":
		msg += "; log in, then send the request again"
	default:
		msg += fmt.Sprintf("; authorization failed: %v", err)
	}
	return nil, &authError{status: res.StatusCode, msg: msg, err: err}
}

// authError is answered to the client as a JSON-RPC error with its status.
type authError struct {
	status int    // upstream's status: 401 or 403
	msg    string // what happened, without the cause
	err    error  // the Authorizer's error, if any
}

func (e *authError) Error() string {
	s := "mcp-oauth-proxy: " + e.msg
	if e.err != nil && !strings.Contains(s, e.err.Error()) {
		s += ": " + e.err.Error()
	}
	if u := e.LoginURL(); u != "" && !strings.Contains(s, u) {
		s += " (login: " + u + ")"
	}
	return s
}

func (e *authError) Unwrap() error { return e.err }

// LoginURL returns the link of the pending or failed login, if any.
func (e *authError) LoginURL() string { return loginURL(e.err) }

func loginURL(err error) string {
	if l, ok := errors.AsType[interface {
		error
		LoginURL() string
	}](err); ok {
		return l.LoginURL()
	}
	return ""
}

// insufficientScopeRE matches the error parameter of a Bearer challenge
// (RFC 6750 §3) asking for more scope.
var insufficientScopeRE = regexp.MustCompile(`(?i)(?:^|[\s,])error\s*=\s*"?insufficient_scope"?`)

func insufficientScope(hdr http.Header) bool {
	for _, v := range hdr.Values("Www-Authenticate") {
		if insufficientScopeRE.MatchString(v) {
			return true
		}
	}
	return false
}

// holdBody reads up to maxHeldBody of res's body into memory and closes the
// upstream body when that was all of it, so a response that may be passed on
// later does not hold the upstream connection meanwhile.
func holdBody(res *http.Response) {
	b, err := io.ReadAll(io.LimitReader(res.Body, maxHeldBody+1))
	if err == nil && len(b) <= maxHeldBody {
		res.Body.Close()
		res.Body = io.NopCloser(bytes.NewReader(b))
		return
	}
	res.Body = readCloser{io.MultiReader(bytes.NewReader(b), res.Body), res.Body}
}

// discard drains a little of a body that will not be used, so its connection
// can be reused, and closes it.
func discard(body io.ReadCloser) {
	io.Copy(io.Discard, io.LimitReader(body, maxHeldBody))
	body.Close()
}
