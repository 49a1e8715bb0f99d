package oauthtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// toyClient is the smallest OAuth-aware MCP client: on 401 it discovers,
// registers, prints a login link to out, waits for its callback and
// retries once. It stands in for the code the package doc example tests.
type toyClient struct {
	endpoint string
	out      io.Writer
	token    string
}

var resourceMetadataRE = regexp.MustCompile(`resource_metadata="([^"]+)"`)

func (c *toyClient) post(ctx context.Context, body string) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			return resp, err
		}
		resp.Body.Close()
		if err := c.login(ctx, resp.Header.Get("WWW-Authenticate")); err != nil {
			return nil, err
		}
	}
}

func (c *toyClient) login(ctx context.Context, challenge string) error {
	m := resourceMetadataRE.FindStringSubmatch(challenge)
	if m == nil {
		return fmt.Errorf("no resource_metadata in %q", challenge)
	}
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	var meta struct {
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
		RegistrationEndpoint  string `json:"registration_endpoint"`
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	codes := make(chan string, 1)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		codes <- r.URL.Query().Get("code")
		fmt.Fprint(w, "You may close this window.")
	}))
	defer cb.Close()
	redirect := cb.URL + "/callback"

	if err := getJSONInto(ctx, m[1], &prm); err != nil {
		return err
	}
	if err := getJSONInto(ctx, prm.AuthorizationServers[0]+"/.well-known/oauth-authorization-server", &meta); err != nil {
		return err
	}
	body := fmt.Sprintf(`{"client_name":"toy","redirect_uris":[%q]}`, redirect)
	resp, err := http.Post(meta.RegistrationEndpoint, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&reg); err != nil {
		return err
	}
	conf := &oauth2.Config{
		ClientID:    reg.ClientID,
		RedirectURL: redirect,
		Endpoint:    oauth2.Endpoint{AuthURL: meta.AuthorizationEndpoint, TokenURL: meta.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams},
	}
	verifier := oauth2.GenerateVerifier()
	resource := oauth2.SetAuthURLParam("resource", prm.Resource)
	fmt.Fprintf(c.out, "Open this link to authorize %s: %s\n", c.endpoint, conf.AuthCodeURL("state", oauth2.S256ChallengeOption(verifier), resource))
	select {
	case code := <-codes:
		tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier), resource)
		if err != nil {
			return err
		}
		c.token = tok.AccessToken
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func getJSONInto(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// TestPackageExample runs the package doc example against toyClient.
func TestPackageExample(t *testing.T) {
	as := NewAuthServer(t, AuthServerOptions{IssueRefreshTokens: true, RotateRefreshTokens: true})
	rs := NewResourceServer(t, as, ResourceOptions{ChallengeScope: "mcp:read"})

	var stderr Buffer
	client := &toyClient{endpoint: rs.Endpoint, out: &stderr}
	ctx := testContext(t)
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.post(ctx, initialize)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()

	link, err := stderr.NextLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	page, err := as.FollowLink(ctx, link)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(page.Body); page.StatusCode != http.StatusOK || string(b) != "You may close this window." {
		t.Errorf("callback page: %s %q", page.Status, b)
	}
	if res := <-done; res.err != nil || res.status != http.StatusOK {
		t.Errorf("replayed request: %d %v, want 200", res.status, res.err)
	}
	if n := as.Count(EndpointRegister); n != 1 {
		t.Errorf("%d registrations, want 1", n)
	}
	var bearers []string
	for _, r := range rs.Requests() {
		if r.Endpoint == EndpointMCP {
			bearers = append(bearers, r.BearerToken())
		}
	}
	if len(bearers) != 2 || bearers[0] != "" || bearers[1] != client.token {
		t.Errorf("bearer tokens upstream %q, want none then the issued one", bearers)
	}
	if info, ok := as.Introspect(client.token); !ok || info.Resource != rs.Endpoint {
		t.Errorf("token info %+v, %v; want valid for %s", info, ok, rs.Endpoint)
	}
}
