package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/wire"
)

// maxHARMiB is the largest --har-max-mib: 1 TiB, far from overflowing the
// byte count.
const maxHARMiB = 1 << 20

// trafficFlags are serve's flags for debugging the HTTP traffic.
type trafficFlags struct {
	logTraffic bool
	logBodies  bool
	harPath    string
	harMaxMiB  int
}

func (f *trafficFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.logTraffic, "log-traffic", false,
		"log every upstream and OAuth exchange on stderr, tokens redacted (implied by -v)")
	fl.BoolVar(&f.logBodies, "log-bodies", false,
		"add the redacted request and response bodies to the traffic log (implies --log-traffic)")
	fl.StringVar(&f.harPath, "har", "",
		"write every exchange, redacted, to this HAR `file`; it stays valid while serve runs and after it stops")
	fl.IntVar(&f.harMaxMiB, "har-max-mib", 16,
		"when the HAR file would grow past this many MiB, move it to its name with .1 before the extension (trace.har → trace.1.har) and start it again; 0: no limit")
}

// traffic records the HTTP exchanges of one command. A nil *traffic
// records nothing, and nothing is installed in the proxy or the engine.
type traffic struct {
	log      *slog.Logger // traffic lines; nil for none
	bodies   bool
	har      *wire.HARWriter
	recorder *wire.Recorder // the last exchanges, for the status page
	errLog   *slog.Logger
	// oauthSecrets names the headers the OAuth engine's requests may carry
	// from a server's configuration (the login probe sends them), whose
	// values the HAR file fingerprints.
	oauthSecrets []string
}

// startTraffic returns the recording serve's flags and -v ask for, or nil
// when they ask for none. It sets the engine flags so that the OAuth
// exchanges are recorded too. Close it with close.
func (a *app) startTraffic(f *serveFlags) (*traffic, error) {
	tf := &f.traffic
	if tf.harMaxMiB < 0 || tf.harMaxMiB > maxHARMiB {
		return nil, exitError{code: 2, err: fmt.Errorf("--har-max-mib %d: want 0 (no limit) to %d", tf.harMaxMiB, maxHARMiB)}
	}
	logLines := tf.logTraffic || tf.logBodies || a.verbose
	if !logLines && tf.harPath == "" {
		return nil, nil
	}
	t := &traffic{bodies: tf.logBodies, recorder: new(wire.Recorder), errLog: a.logger}
	if logLines {
		t.log = slog.New(redact.NewHandler(a.logger.Handler()))
	}
	if tf.harPath != "" {
		har, err := wire.CreateHAR(tf.harPath, wire.HAROptions{MaxSize: int64(tf.harMaxMiB) << 20, Logger: a.logger})
		if err != nil {
			return nil, err
		}
		t.har = har
		a.logger.Info("writing every exchange to a HAR file", "file", tf.harPath, "max_mib", tf.harMaxMiB)
	}
	f.engine.traffic = t
	return t, nil
}

// close completes the HAR file.
func (t *traffic) close() {
	if t == nil || t.har == nil {
		return
	}
	if err := t.har.Close(); err != nil {
		t.errLog.Error("the HAR file is incomplete", "err", err)
	}
}

// wrapUpstream returns the proxy's proxy.Options.WrapTransport: nil when
// nothing is recorded. headers names each server's configured headers,
// whose values the HAR file fingerprints.
func (t *traffic) wrapUpstream(headers map[string][]string) func(string, http.RoundTripper) http.RoundTripper {
	if t == nil {
		return nil
	}
	return func(server string, rt http.RoundTripper) http.RoundTripper {
		wt := t.transport(rt, server, wire.KindMCP)
		wt.SecretHeaders = headers[server]
		return wt
	}
}

func (t *traffic) transport(base http.RoundTripper, server, kind string) *wire.Transport {
	return &wire.Transport{
		Base:     base,
		Server:   server,
		Kind:     kind,
		Recorder: t.recorder,
		Logger:   t.log,
		Bodies:   t.bodies,
		HAR:      t.har,
	}
}

// oauthHTTPClient returns the OAuth engine's HTTP client: nil (the
// engine's own) unless t records or -v asks for the traffic log (as
// `auth login -v` does); then a client like the engine's own, 30 s timeout
// and no redirects, whose exchanges are recorded.
func (a *app) oauthHTTPClient(t *traffic) *http.Client {
	if t == nil && a.verbose {
		t = &traffic{log: slog.New(redact.NewHandler(a.logger.Handler()))}
	}
	if t == nil {
		return nil
	}
	wt := t.transport(http.DefaultTransport, "", wire.KindOAuth)
	wt.SecretHeaders = t.oauthSecrets
	return &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     wt,
	}
}
