package oauth

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// cbOffline returns a Callbacks that never binds, as when the
// callback port is taken: logins can only complete by Deliver.
func cbOffline(t *testing.T) *Callbacks {
	t.Helper()
	c, _ := cbNew(t)
	c.Listen = func(string, string) (net.Listener, error) {
		return nil, errors.New("test: no network")
	}
	return c
}

func cbExpectOffline(t *testing.T, c *Callbacks, state string) *Pending {
	t.Helper()
	p, err := c.Expect(3030, "/callback", state)
	if err == nil {
		t.Fatal("Expect: no listen error from the failing Listen")
	}
	t.Cleanup(p.Close)
	return p
}

func TestDeliver(t *testing.T) {
	tests := []struct {
		name, input string
		want        *CallbackResult
	}{
		{"full URL", "http://localhost:3030/callback?code=c1&state=" + cbStateA + "&iss=https%3A%2F%2Fas.example",
			&CallbackResult{Code: "c1", State: cbStateA, Iss: "https://as.example"}},
		{"URL with spaces and fragment", "  http://127.0.0.1:3030/callback?state=" + cbStateA + "&code=c2#_=_ \r\n",
			&CallbackResult{Code: "c2", State: cbStateA}},
		{"URL without scheme", "localhost:3030/callback?code=c3&state=" + cbStateA,
			&CallbackResult{Code: "c3", State: cbStateA}},
		{"query string", "code=c4&state=" + cbStateA,
			&CallbackResult{Code: "c4", State: cbStateA}},
		{"query string with ?", "?code=c5&state=" + cbStateA,
			&CallbackResult{Code: "c5", State: cbStateA}},
		{"escaped code", "?code=a%2Fb%3D&state=" + cbStateA,
			&CallbackResult{Code: "a/b=", State: cbStateA}},
		{"query without state", "?code=c6",
			&CallbackResult{Code: "c6", State: cbStateA}},
		{"bare code", "c7.XYZ-_~",
			&CallbackResult{Code: "c7.XYZ-_~", State: cbStateA}},
		{"bare base64 code", "YWJj/ZA==",
			&CallbackResult{Code: "YWJj/ZA==", State: cbStateA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cbOffline(t)
			p := cbExpectOffline(t, c, cbStateA)
			if err := c.Deliver(tt.input); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			got, err := cbWait(t, p)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Wait result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeliverServerError(t *testing.T) {
	c := cbOffline(t)
	p := cbExpectOffline(t, c, cbStateA)
	if err := c.Deliver("?error=access_denied&error_description=no+way&state=" + cbStateA); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	_, err := cbWait(t, p)
	want := &CallbackError{Code: "access_denied", Description: "no way"}
	got, ok := errors.AsType[*CallbackError](err)
	if !ok {
		t.Fatalf("Wait error = %v, want *CallbackError", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CallbackError (-want +got):\n%s", diff)
	}
}

func TestDeliverRejects(t *testing.T) {
	tests := []struct {
		name    string
		pending []string // states of the waiting logins
		input   string
		wantErr string
	}{
		{"empty", []string{cbStateA}, "  \t", "nothing pasted"},
		{"garbage", []string{cbStateA}, "what is this", "not a callback URL, query string or authorization code"},
		{"control character", []string{cbStateA}, "abc\x00def", "not a callback URL"},
		{"URL without query", []string{cbStateA}, "http://localhost:3030/callback", "has no query"},
		{"unknown state", []string{cbStateA}, "?code=x&state=" + cbStateB, "no login is waiting for the pasted response"},
		{"no code", []string{cbStateA}, "?state=" + cbStateA, "has no code"},
		{"no parameters", []string{cbStateA}, "http://localhost:3030/callback?foo=bar", "neither code, state nor error"},
		{"malformed query", []string{cbStateA}, "?code=%zz&state=" + cbStateA, "malformed callback query"},
		{"repeated state", []string{cbStateA}, "?code=x&state=" + cbStateA + "&state=" + cbStateB, "repeated"},
		{"error without state", []string{cbStateA}, "?error=access_denied", "has no state"},
		{"bare code, two logins", []string{cbStateA, cbStateB}, "the-code", "ambiguous"},
		{"query without state, two logins", []string{cbStateA, cbStateB}, "code=the-code", "ambiguous"},
		{"bare code, no login", nil, "the-code", "no login is waiting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cbOffline(t)
			var ps []*Pending
			for _, s := range tt.pending {
				ps = append(ps, cbExpectOffline(t, c, s))
			}
			err := c.Deliver(tt.input)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Deliver(%q) = %v, want an error containing %q", tt.input, err, tt.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "oauth: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			for _, p := range ps {
				cbAssertNotDelivered(t, p)
			}
		})
	}
}

func TestDeliverRequiresIss(t *testing.T) {
	c := cbOffline(t)
	p := cbExpectOffline(t, c, cbStateA)
	p.RequireIss()
	for _, in := range []string{"bare-code", "?code=c1", "?code=c1&state=" + cbStateA} {
		if err := c.Deliver(in); err == nil || !strings.Contains(err.Error(), "paste the whole address") {
			t.Errorf("Deliver(%q) = %v, want a request for the whole address", in, err)
		}
	}
	// The login still waits, and the whole address completes it.
	if err := c.Deliver("http://localhost:3030/callback?code=c2&state=" + cbStateA + "&iss=https%3A%2F%2Fas.example"); err != nil {
		t.Fatal(err)
	}
	got, err := cbWait(t, p)
	if err != nil || got.Code != "c2" || got.Iss != "https://as.example" {
		t.Errorf("Wait = %+v, %v; want code c2 from https://as.example", got, err)
	}
}

func TestDeliverCompletedLogin(t *testing.T) {
	c := cbOffline(t)
	pA := cbExpectOffline(t, c, cbStateA)
	if err := c.Deliver("?code=first&state=" + cbStateA); err != nil {
		t.Fatal(err)
	}
	err := c.Deliver("?code=second&state=" + cbStateA)
	if err == nil || !strings.Contains(err.Error(), "already received") {
		t.Errorf("second Deliver = %v, want \"already received\"", err)
	}
	// A completed login no longer counts for a bare code.
	pB := cbExpectOffline(t, c, cbStateB)
	if err := c.Deliver("bare"); err != nil {
		t.Fatalf("bare code with one login waiting: %v", err)
	}
	if got, err := cbWait(t, pA); err != nil || got.Code != "first" {
		t.Errorf("login A: Wait = %+v, %v; want code first", got, err)
	}
	if got, err := cbWait(t, pB); err != nil || got.Code != "bare" || got.State != cbStateB {
		t.Errorf("login B: Wait = %+v, %v; want code bare", got, err)
	}
}

// pasteSession runs ReadPastes on a pipe and hands its output back line by
// line.
type pasteSession struct {
	in   *io.PipeWriter
	out  chan string
	done chan struct{} // closed when ReadPastes returned
}

func startPastes(t *testing.T, ctx context.Context, c *Callbacks) *pasteSession {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &pasteSession{in: inW, out: make(chan string, 16), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		c.ReadPastes(ctx, inR, outW)
	}()
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			s.out <- sc.Text()
		}
		close(s.out)
	}()
	t.Cleanup(func() {
		inW.Close()
		outW.Close()
		outR.Close()
	})
	return s
}

func (s *pasteSession) paste(t *testing.T, text string) {
	t.Helper()
	if _, err := io.WriteString(s.in, text); err != nil {
		t.Fatalf("paste: %v", err)
	}
}

func (s *pasteSession) line(t *testing.T) string {
	t.Helper()
	select {
	case l := <-s.out:
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no output from ReadPastes")
		return ""
	}
}

func (s *pasteSession) ended(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("ReadPastes did not return")
	}
}

func TestReadPastes(t *testing.T) {
	c := cbOffline(t)
	pA := cbExpectOffline(t, c, cbStateA)
	pB := cbExpectOffline(t, c, cbStateB)
	s := startPastes(t, t.Context(), c)

	// Empty lines produce no output, so the first line answers the URL.
	s.paste(t, "\n   \n\r\nhttp://localhost:3030/callback?code=pasted&state="+cbStateA+"\n")
	if got := s.line(t); got != "callback accepted" {
		t.Errorf("output %q, want callback accepted", got)
	}
	if got, err := cbWait(t, pA); err != nil || got.Code != "pasted" {
		t.Errorf("login A: Wait = %+v, %v; want code pasted", got, err)
	}

	s.paste(t, "not a url\n")
	if got := s.line(t); !strings.Contains(got, "not a callback URL") {
		t.Errorf("output %q, want the error", got)
	}

	// EOF ends reading and cancels nothing.
	s.in.Close()
	s.ended(t)
	cbAssertNotDelivered(t, pB)
	if err := c.Deliver("?code=later&state=" + cbStateB); err != nil {
		t.Fatal(err)
	}
	if got, err := cbWait(t, pB); err != nil || got.Code != "later" {
		t.Errorf("login B: Wait = %+v, %v; want code later", got, err)
	}
}

func TestReadPastesContext(t *testing.T) {
	c := cbOffline(t)
	p := cbExpectOffline(t, c, cbStateA)
	ctx, cancel := context.WithCancel(t.Context())
	s := startPastes(t, ctx, c)
	cancel()
	// ReadPastes returns although nothing was written or closed.
	s.ended(t)
	cbAssertNotDelivered(t, p)
}
