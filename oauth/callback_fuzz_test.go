package oauth

import (
	"errors"
	"net"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// fzState is the state of the one login the callback fuzz targets expect.
const fzState = "fz-state-0123456789abcdefghijklmnop"

// fzCallbacks returns Callbacks with one pending login for fzState on port
// 1 and path /callback. Nothing is bound: its listener "fails", which
// leaves the login pending for receive and Deliver.
func fzCallbacks(t *testing.T) (*Callbacks, *Pending) {
	c := &Callbacks{Listen: func(string, string) (net.Listener, error) { return nil, errors.New("not binding in a fuzz test") }}
	p, _ := c.Expect(1, "/callback", fzState)
	t.Cleanup(p.Close)
	return c, p
}

// fzDone returns the result of p if it has completed.
func fzDone(p *Pending) (res *CallbackResult, err error, done bool) {
	select {
	case <-p.done:
		return p.res, p.err, true
	default:
		return nil, nil, false
	}
}

// FuzzCallbackQuery sends arbitrary queries to the callback endpoint of a
// waiting login. Only a query with exactly one state, the login's, and a
// code or error completes it; everything else is a 400 page that leaves the
// login waiting; the page never shows the code and never carries markup
// from the query.
func FuzzCallbackQuery(f *testing.F) {
	for _, s := range []string{
		"code=abc&state=" + fzState,
		"code=abc&state=" + fzState + "&iss=https%3A%2F%2Fas.example",
		"error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state=" + fzState,
		"code=abc&state=other",
		"code=abc",
		"state=" + fzState,
		"code=a&code=b&state=" + fzState,
		"state=" + fzState + "&state=" + fzState + "&code=x",
		"code=%zz&state=" + fzState,
		"code=abc;state=" + fzState,
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		c, p := fzCallbacks(t)
		status, pg := c.receive(1, "/callback", rawQuery)
		res, err, done := fzDone(p)
		q, qerr := url.ParseQuery(rawQuery)
		single := func(k string) bool { return qerr == nil && len(q[k]) == 1 }
		ours := single("state") && q.Get("state") == fzState &&
			(len(q["code"]) <= 1 && len(q["error"]) <= 1 && len(q["iss"]) <= 1 &&
				len(q["error_description"]) <= 1 && len(q["error_uri"]) <= 1)
		switch {
		case status == 200:
			if !done || err != nil || res == nil || !ours || res.State != fzState || res.Code == "" || res.Code != q.Get("code") || q.Get("error") != "" {
				t.Fatalf("query %q: 200 with result %+v, %v (done %v)", rawQuery, res, err, done)
			}
		case status == 400:
			if done {
				var ce *CallbackError
				if !errors.As(err, &ce) || !ours || ce.Code != q.Get("error") || ce.Code == "" {
					t.Fatalf("query %q: 400 but the login completed with %+v, %v", rawQuery, res, err)
				}
			} else if ours && (q.Get("code") != "" || q.Get("error") != "") {
				t.Fatalf("query %q: refused a well-formed response for the waiting login: %+v", rawQuery, pg)
			}
		default:
			t.Fatalf("query %q: status %d", rawQuery, status)
		}

		rec := httptest.NewRecorder()
		writePage(rec, status, pg)
		body := rec.Body.String()
		// The page with the same parts but harmless text: markup from the
		// query would add tags to the real one.
		skeleton := page{Title: "t"}
		if pg.Message != "" {
			skeleton.Message = "m"
		}
		if pg.Detail != "" {
			skeleton.Detail = "d"
		}
		blank := httptest.NewRecorder()
		writePage(blank, status, skeleton)
		if got, want := strings.Count(body, "<"), strings.Count(blank.Body.String(), "<"); got != want {
			t.Errorf("query %q: the page has %d tags, want %d: markup from the query got through:\n%s", rawQuery, got, want, body)
		}
		if qerr != nil {
			return
		}
		code := q.Get("code")
		// The fixed texts have no digits: a code with one can only come from the query.
		if len(code) >= 12 && strings.ContainsAny(code, "0123456789") && strings.Contains(body, code) && !strings.Contains(blank.Body.String(), code) &&
			!strings.Contains(q.Get("error_description")+q.Get("error")+q.Get("error_uri"), code) {
			t.Errorf("query %q: the page shows the code", rawQuery)
		}
	})
}

// FuzzDeliver pastes arbitrary text into a process with one waiting login.
// A paste either completes the login and returns nil, or returns an error
// that does not repeat the pasted text and leaves the login waiting.
func FuzzDeliver(f *testing.F) {
	for _, s := range []string{
		"http://localhost:3030/callback?code=abc&state=" + fzState,
		"?code=abc&state=" + fzState,
		"code=abc&state=" + fzState,
		"code=abc&state=other",
		"error=access_denied&state=" + fzState,
		"error=access_denied",
		"abcDEF123-._~",
		"abc==",
		"http://localhost:3030/callback",
		"what is this",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		c, p := fzCallbacks(t)
		err := c.Deliver(input)
		res, werr, done := fzDone(p)
		if err != nil {
			if done {
				t.Fatalf("Deliver(%q) = %v, but the login completed with %+v, %v", input, err, res, werr)
			}
			if s := strings.TrimSpace(input); len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Errorf("Deliver(%q): the error repeats the pasted text: %v", input, err)
			}
			return
		}
		if !done {
			t.Fatalf("Deliver(%q) = nil, but the login is still waiting", input)
		}
		if werr == nil && (res == nil || res.Code == "" || res.State != fzState) {
			t.Fatalf("Deliver(%q) completed the login with %+v", input, res)
		}
	})
}

// FuzzCallbackHost sends arbitrary Host headers to the callback listener
// of port 3030: only localhost, 127.0.0.1 and [::1] on that port get
// through (DNS rebinding).
func FuzzCallbackHost(f *testing.F) {
	for _, s := range []string{"localhost:3030", "LocalHost:3030", "127.0.0.1:3030", "[::1]:3030", "localhost", "evil.example:3030", "127.0.0.2:3030", "localhost:", "[::1]", "::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		if !loopbackHost(host, 3030) {
			return
		}
		name, port, err := net.SplitHostPort(host)
		if err != nil || port != "3030" || !strings.EqualFold(name, "localhost") && name != "127.0.0.1" && name != "::1" {
			t.Fatalf("the callback accepts Host %q", host)
		}
	})
}
