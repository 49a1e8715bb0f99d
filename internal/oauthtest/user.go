package oauthtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// LinkPrefix starts the line on which the proxy prints a login link:
// "Open this link to authorize <server>: <URL>".
const LinkPrefix = "Open this link to authorize"

// Links returns every login link in text, in order. A link is the last
// field of a line containing LinkPrefix, or, when that line ends with a
// colon (fast-agent's style), the whole next line. Quotes and angle
// brackets around it are dropped (a log line may quote its message). In a
// JSON log record whose message starts with LinkPrefix, it is the "link"
// attribute.
func Links(text string) []string {
	var links []string
	lines := strings.Split(text, "\n")
	for i, line := range lines {
		if link, ok := jsonLink(line); ok {
			links = append(links, link)
			continue
		}
		j := strings.Index(line, LinkPrefix)
		if j < 0 {
			continue
		}
		fields := strings.Fields(line[j+len(LinkPrefix):])
		if n := len(fields); n > 0 {
			if last := trimLink(fields[n-1]); isHTTPURL(last) && !strings.HasSuffix(last, ":") {
				links = append(links, last)
				continue
			}
		}
		if i+1 < len(lines) && strings.HasSuffix(strings.TrimSpace(line), ":") {
			if next := trimLink(strings.TrimSpace(lines[i+1])); isHTTPURL(next) && !strings.ContainsAny(next, " \t") {
				links = append(links, next)
			}
		}
	}
	return links
}

// jsonLink returns the link of a JSON log record announcing one.
func jsonLink(line string) (string, bool) {
	if !strings.HasPrefix(line, "{") {
		return "", false
	}
	var rec struct {
		Msg  string `json:"msg"`
		Link string `json:"link"`
	}
	if json.Unmarshal([]byte(line), &rec) != nil || !strings.HasPrefix(rec.Msg, LinkPrefix) || !isHTTPURL(rec.Link) {
		return "", false
	}
	return rec.Link, true
}

// trimLink drops characters that cannot end an encoded URL but often
// surround one.
func trimLink(s string) string {
	return strings.Trim(s, `"'<>`)
}

// LinkFrom returns the first login link in text (see Links).
func LinkFrom(text string) (string, bool) {
	links := Links(text)
	if len(links) == 0 {
		return "", false
	}
	return links[0], true
}

func isHTTPURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// Redirect plays the first step of a user opening link in a browser: it
// GETs link and returns where the authorization server redirected, without
// going there. It refuses links that are not http(s) URLs on a loopback
// host (every fake listens on 127.0.0.1), answers that are not redirects,
// and redirects away from loopback.
func Redirect(ctx context.Context, link string) (*url.URL, error) {
	if err := checkLoopback(link); err != nil {
		return nil, fmt.Errorf("oauthtest: login link: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return nil, fmt.Errorf("oauthtest: login link %q: %w", link, err)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("oauthtest: login link: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return nil, fmt.Errorf("oauthtest: login link %s answered %s, not a redirect: %s", link, resp.Status, bytes.TrimSpace(body))
	}
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("oauthtest: login link %s: redirect without a usable Location: %w", link, err)
	}
	if err := checkLoopback(loc.String()); err != nil {
		return nil, fmt.Errorf("oauthtest: login link %s redirected: %w", link, err)
	}
	return loc, nil
}

// FollowLink plays the user: it GETs link (the AS answers with a redirect
// to the client's redirect URI), then GETs that location (the client's
// callback server, following its redirects on loopback), and returns the
// final response. Its body is already read and need not be closed. The
// link is checked as by Redirect.
func FollowLink(ctx context.Context, link string) (*http.Response, error) {
	loc, err := Redirect(ctx, link)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("oauthtest: callback %s: %w", loc.Redacted(), err)
	}
	c := &http.Client{CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return checkLoopback(r.URL.String())
	}}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("oauthtest: callback: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("oauthtest: callback %s: reading the answer: %w", resp.Request.URL.Redacted(), err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// FollowLink is FollowLink that also checks that link is a request to this
// server's authorization endpoint.
func (s *AuthServer) FollowLink(ctx context.Context, link string) (*http.Response, error) {
	u, err := url.Parse(link)
	if err != nil {
		return nil, fmt.Errorf("oauthtest: login link %q: %w", link, err)
	}
	u.RawQuery, u.Fragment = "", ""
	if u.String() != s.AuthorizationEndpoint {
		return nil, fmt.Errorf("oauthtest: login link %q does not point at the authorization endpoint %s", link, s.AuthorizationEndpoint)
	}
	return FollowLink(ctx, link)
}

func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("%q is not an http(s) URL on a loopback host; refusing to open it", raw)
	}
	return nil
}
