// Command client is the "client command" of the MCP conformance suite's
// client mode (see scripts/conformance.sh and test/conformance/README.md).
//
// The suite runs it as
//
//	client <server URL>
//
// with MCP_CONFORMANCE_SCENARIO set and, for some scenarios,
// MCP_CONFORMANCE_CONTEXT (JSON with pre-registered client credentials).
// It starts mcp-oauth-proxy in front of the server URL, follows every login
// link the proxy prints (the suite's authorization server approves at once),
// and drives an MCP client that knows nothing about OAuth through the proxy:
// initialize, tools/list, tools/call test-tool, close. All OAuth checks the
// suite scores are therefore made against the proxy.
//
// The proxy binary is $MCP_OAUTH_PROXY_BIN, or mcp-oauth-proxy on PATH.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// deadline bounds a run; with stopGrace for the proxy it stays under the
// suite's 30 s client timeout.
const deadline = 24 * time.Second

// cimdURL is the client ID metadata document URL the suite's basic-cimd
// scenario expects as client_id.
const cimdURL = "https://conformance-test.local/client-metadata.json"

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: client <MCP server URL>")
		os.Exit(2)
	}
	// The suite stops a client that runs too long with SIGTERM; run then
	// still stops the proxy.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1], os.Getenv, os.Stderr, log)
	stop()
	scenario := os.Getenv("MCP_CONFORMANCE_SCENARIO")
	if err != nil {
		log.Error("conformance client failed", "scenario", scenario, "err", err)
		os.Exit(1)
	}
	log.Info("conformance client succeeded", "scenario", scenario)
}

// run starts the proxy in front of serverURL, exercises it, and stops it.
func run(ctx context.Context, serverURL string, getenv func(string) string, out io.Writer, log *slog.Logger) (err error) {
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()

	upstream, err := url.Parse(serverURL)
	if err != nil || (upstream.Scheme != "http" && upstream.Scheme != "https") || upstream.Host == "" {
		return fmt.Errorf("server URL %q: want an absolute http(s) URL", serverURL)
	}
	creds, err := parseContext(getenv("MCP_CONFORMANCE_CONTEXT"))
	if err != nil {
		return err
	}
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	listen := fmt.Sprintf("127.0.0.1:%d", ports[0])
	bin := getenv("MCP_OAUTH_PROXY_BIN")
	if bin == "" {
		bin = "mcp-oauth-proxy"
	}

	p, err := startProxy(bin, proxyArgs(serverURL, listen, ports[1], creds), out, log)
	if err != nil {
		return err
	}
	defer func() {
		// A proxy that does not exit cleanly on SIGTERM is a failure too,
		// but the first error is the interesting one.
		if stopErr := p.stop(); err == nil {
			err = stopErr
		}
	}()

	if err := p.waitListening(ctx, listen); err != nil {
		return err
	}
	return exercise(ctx, localURL(listen, upstream), log)
}

// credentials are the pre-registered client credentials of
// MCP_CONFORMANCE_CONTEXT, e.g. for auth/pre-registration.
type credentials struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

func parseContext(s string) (credentials, error) {
	var c credentials
	if s == "" {
		return c, nil
	}
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return c, fmt.Errorf("MCP_CONFORMANCE_CONTEXT: %v", err)
	}
	if c.ClientID == "" && c.ClientSecret != "" {
		return c, errors.New("MCP_CONFORMANCE_CONTEXT: client_secret without client_id")
	}
	return c, nil
}

// proxyArgs returns the serve command line for one scenario.
func proxyArgs(serverURL, listen string, redirectPort int, c credentials) []string {
	args := []string{"serve",
		"--url", serverURL,
		"--listen", listen,
		"--persist", "memory",
		"--redirect-port", fmt.Sprint(redirectPort),
		"--client-metadata-url", cimdURL,
		"--login-timeout", "25s",
		// Scenarios run side by side; only one could have the default
		// status page address.
		"--admin", "off",
	}
	if c.ClientID != "" {
		args = append(args, "--client-id", c.ClientID)
	}
	if c.ClientSecret != "" {
		args = append(args, "--client-secret", c.ClientSecret)
	}
	return args
}

// localURL is the proxy's address for upstream: same path and query.
func localURL(listen string, upstream *url.URL) string {
	u := url.URL{Scheme: "http", Host: listen, Path: upstream.Path, RawPath: upstream.RawPath, RawQuery: upstream.RawQuery}
	return u.String()
}
