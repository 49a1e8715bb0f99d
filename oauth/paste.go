package oauth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// Deliver completes a pending login from pasted text: the callback URL the
// browser ended on, its query string (with or without the leading '?'), or
// a bare authorization code, which is accepted only when exactly one login
// is waiting. Pasting works whether or not a listener runs, so a browser on
// another machine can finish a login.
//
// Deliver returns nil when a login was completed, also when the pasted
// response is the authorization server's error (the login's Wait reports
// it). Otherwise it returns an error saying what was wrong; the error never
// repeats the pasted text, which may hold a code.
func (c *Callbacks) Deliver(input string) error {
	s := strings.TrimSpace(input)
	if s == "" {
		return errors.New("oauth: nothing pasted")
	}
	if q, ok, err := pastedQuery(s); err != nil {
		return err
	} else if ok {
		return c.deliverQuery(q)
	}
	if looksLikeURL(s) {
		return errors.New("oauth: the pasted address has no query: copy the whole address from the browser, including ?code=…")
	}
	if !validCode(s) {
		return errors.New("oauth: pasted text is not a callback URL, query string or authorization code")
	}
	return c.deliverCode(s, "")
}

// pastedQuery extracts the authorization response parameters from s, a
// URL or query string. ok is false when s is neither.
func pastedQuery(s string) (q url.Values, ok bool, err error) {
	raw, hasQuery := "", false
	if _, after, found := strings.Cut(s, "?"); found {
		raw, hasQuery = after, true
	} else if strings.Contains(s, "=") && !looksLikeURL(s) {
		raw = s
	} else {
		return nil, false, nil
	}
	raw, _, _ = strings.Cut(raw, "#")
	q, err = parseCallbackQuery(raw)
	if err != nil {
		if !hasQuery && validCode(s) {
			return nil, false, nil
		}
		return nil, false, err
	}
	if !q.Has("code") && !q.Has("state") && !q.Has("error") {
		if !hasQuery && validCode(s) {
			// A code such as "abc==" is not a query string.
			return nil, false, nil
		}
		return nil, false, errors.New("oauth: the pasted text has neither code, state nor error parameters")
	}
	return q, true, nil
}

func looksLikeURL(s string) bool {
	l := strings.ToLower(s)
	for _, prefix := range []string{"http:", "https:", "localhost", "127.0.0.1", "[::1]"} {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return strings.Contains(s, "://")
}

// validCode reports whether s can be an authorization code: visible ASCII
// characters (RFC 6749 Appendix A.11) without spaces.
func validCode(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return s != ""
}

func (c *Callbacks) deliverQuery(q url.Values) error {
	state, code, e := q.Get("state"), q.Get("code"), q.Get("error")
	if state == "" {
		if e != "" {
			return fmt.Errorf("oauth: the pasted response has no state; it carries the error %q", e)
		}
		if code == "" {
			return errors.New("oauth: the pasted response has no code")
		}
		return c.deliverCode(code, q.Get("iss"))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[state]
	switch {
	case p == nil:
		return errors.New("oauth: no login is waiting for the pasted response: it expired, was already completed, or belongs to another program")
	case p.completed():
		return errors.New("oauth: this login already received its authorization response")
	case e != "":
		p.finishLocked(nil, &CallbackError{Code: e, Description: q.Get("error_description"), URI: q.Get("error_uri")})
	case code == "":
		return errors.New("oauth: the pasted response has no code")
	case p.needIss && q.Get("iss") == "":
		return errNeedIss
	default:
		p.finishLocked(&CallbackResult{Code: code, State: state, Iss: q.Get("iss")}, nil)
	}
	c.logger().Debug("oauth: authorization response pasted", "state", stateFingerprint(state))
	return nil
}

// errNeedIss refuses a pasted response without the iss parameter its
// authorization server sends.
var errNeedIss = errors.New("oauth: this authorization server names itself in its response (RFC 9207): paste the whole address the browser ends on, not only the code")

func (c *Callbacks) deliverCode(code, iss string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var waiting []*Pending
	for _, p := range c.pending {
		if !p.completed() {
			waiting = append(waiting, p)
		}
	}
	switch len(waiting) {
	case 0:
		return errors.New("oauth: no login is waiting for an authorization code")
	case 1:
		p := waiting[0]
		if p.needIss && iss == "" {
			return errNeedIss
		}
		p.finishLocked(&CallbackResult{Code: code, State: p.state, Iss: iss}, nil)
		c.logger().Debug("oauth: authorization code pasted", "state", stateFingerprint(p.state))
		return nil
	default:
		return fmt.Errorf("oauth: %d logins are waiting, so a bare code is ambiguous: paste the whole callback URL", len(waiting))
	}
}

// maxPasteLine bounds a pasted line; callback URLs are far shorter.
const maxPasteLine = 1 << 20

// ReadPastes reads lines from r until ctx is done or r ends, and Delivers
// each non-empty line, writing a one-line result ("callback accepted" or
// the error) to w. The end of r (an empty or closed stdin) ends reading
// and cancels nothing.
//
// A read in progress when ctx ends cannot be interrupted: ReadPastes
// returns at once and the line, if one comes, is dropped. The caller
// decides whether r is worth reading, typically only when stdin is a
// terminal.
func (c *Callbacks) ReadPastes(ctx context.Context, r io.Reader, w io.Writer) {
	lines := make(chan string)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 4096), maxPasteLine)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-stop:
				return
			}
		}
		readErr <- sc.Err()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-readErr:
			if err != nil {
				c.logger().Warn("oauth: stopped reading pasted callbacks", "err", err)
			}
			return
		case line := <-lines:
			if strings.TrimSpace(line) == "" {
				continue
			}
			if err := c.Deliver(line); err != nil {
				fmt.Fprintln(w, err)
			} else {
				fmt.Fprintln(w, "callback accepted")
			}
		}
	}
}
