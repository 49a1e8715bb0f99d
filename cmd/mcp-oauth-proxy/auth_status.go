package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/config"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/store"
)

type statusReport struct {
	Keychain   keychainStatus   `json:"keychain"`
	Identities []identityStatus `json:"identities"`
	Servers    []serverStatus   `json:"servers"`
	Serve      *liveStatus      `json:"serve,omitempty"` // a running serve's state (admin.go)
}

type keychainStatus struct {
	Backend   string `json:"backend"`
	Available bool   `json:"available"`
	Writable  bool   `json:"writable"`
	Reason    string `json:"reason,omitempty"`
}

func newKeychainStatus(s store.Status) keychainStatus {
	return keychainStatus{Backend: s.Backend, Available: s.Available, Writable: s.Writable, Reason: s.Reason}
}

type identityStatus struct {
	Identity         string     `json:"identity"`
	Token            tokenState `json:"token"`
	TokenError       string     `json:"token_error,omitempty"` // why a stored token record is unreadable
	ClientRegistered bool       `json:"client_registered"`
}

type serverStatus struct {
	Name       string     `json:"name"`
	Transport  string     `json:"transport"`
	URL        string     `json:"url"`
	Identity   string     `json:"identity"`
	OAuth      bool       `json:"oauth"`
	Persist    string     `json:"persist,omitempty"`
	Token      tokenState `json:"token"`
	TokenError string     `json:"token_error,omitempty"` // why a stored token record is unreadable
}

func (a *app) authStatusCommand() *cobra.Command {
	var asJSON bool
	var adm adminFlags
	cmd := &cobra.Command{
		Use:   "status [TARGET]",
		Short: "Show the keychain backend, stored logins and configured servers",
		Long: `status shows the keychain backend, every identity with stored credentials (from
oauth:index) and every configured HTTP/SSE server with the identity its tokens are stored
under. TARGET narrows the output to one identity: a server name from the config, or a URL
(normalized to its identity, e.g. https://huggingface.co/mcp?login → https://huggingface.co).

When serve is running, its status page (--admin) answers too: status then first shows the
live state of serve's servers, with the login links they wait on.`,
		Args: usage(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig(false)
			if err != nil {
				return err
			}
			var target string
			if len(args) == 1 {
				if target, err = targetIdentity(cfg, args[0]); err != nil {
					return err
				}
			}
			report, err := a.statusReport(cfg, target)
			if err != nil {
				return err
			}
			if addr, _ := adm.target(a); addr != "" {
				report.Serve = a.liveStatus(cmd.Context(), addr, target)
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(report)
			}
			return a.printStatus(report)
		},
		ValidArgsFunction: a.completeServerNames,
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	adm.register(cmd, "status page `ADDR` of a running serve to ask, or off")
	return cmd
}

// targetIdentity resolves a server name or URL to the identity it stores
// tokens under.
func targetIdentity(cfg *config.Config, target string) (string, error) {
	if isURL(target) {
		return oauth.Identity(target), nil
	}
	if cfg == nil {
		return "", fmt.Errorf("%q is not a URL and there is no config to look it up in (use --config FILE)", target)
	}
	s, ok := cfg.Server(target)
	if !ok {
		return "", fmt.Errorf("no server %q in %s", target, cfg.Path)
	}
	if s.Transport == config.Stdio {
		return "", fmt.Errorf("server %q is a stdio server: it has no OAuth login", target)
	}
	return oauth.Identity(s.URL), nil
}

func (a *app) statusReport(cfg *config.Config, target string) (*statusReport, error) {
	now := time.Now()
	kc, _ := a.stores()
	report := &statusReport{Keychain: newKeychainStatus(kc.Status()), Identities: []identityStatus{}, Servers: []serverStatus{}}

	creds := a.credentials("keyring")
	ids, err := creds.Identities()
	if err != nil {
		a.logger.Warn("cannot read the identity index", "err", err)
	}
	for _, id := range ids {
		if target != "" && id != target {
			continue
		}
		is := identityStatus{Identity: redact.URL(id)}
		tok, _, err := creds.Token(id)
		if err != nil {
			is.TokenError = unreadableRecord(err, id)
			a.logger.Warn("cannot read stored token", "identity", redact.URL(id), "err", is.TokenError)
		}
		is.Token = newTokenState(tok, now)
		ci, _, err := creds.Client(id)
		if err != nil {
			a.logger.Warn("cannot read stored client registration", "identity", redact.URL(id), "err", unreadableRecord(err, id))
		}
		is.ClientRegistered = ci != nil
		report.Identities = append(report.Identities, is)
	}

	if cfg != nil {
		for _, s := range cfg.Servers {
			id := oauth.Identity(s.URL)
			if s.Transport == config.Stdio || (target != "" && id != target) {
				continue
			}
			ss := serverStatus{Name: s.Name, Transport: string(s.Transport), URL: redact.URLString(s.URL),
				Identity: redact.URL(id), OAuth: s.Auth.OAuth}
			if s.Auth.OAuth {
				ss.Persist = s.Auth.Persist
				ids := oauth.IdentityCandidates(s.URL)
				tok, _, err := a.credentials(s.Auth.Persist).Token(ids...)
				if err != nil {
					ss.TokenError = unreadableRecord(err, ids...)
					a.logger.Warn("cannot read stored token", "server", s.Name, "err", ss.TokenError)
				}
				ss.Token = newTokenState(tok, now)
			}
			report.Servers = append(report.Servers, ss)
		}
	}
	return report, nil
}

func (a *app) printStatus(r *statusReport) error {
	if r.Serve != nil {
		if err := a.printLiveStatus(r.Serve); err != nil {
			return err
		}
	}
	fmt.Fprintf(a.stdout, "Keychain: %s\n\n", a.keychainLine())
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STORED IDENTITY\tTOKEN\tCLIENT")
	if len(r.Identities) == 0 {
		fmt.Fprintln(w, "(none)")
	}
	for _, id := range r.Identities {
		client := "-"
		if id.ClientRegistered {
			client = "registered"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", id.Identity, tokenCell(id.Token, id.TokenError), client)
	}
	if len(r.Servers) > 0 {
		// A table of its own: one writer would pad both to one set of
		// column widths.
		if err := w.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(a.stdout)
		w = tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "SERVER\tTRANSPORT\tIDENTITY\tOAUTH\tPERSIST\tTOKEN")
		for _, s := range r.Servers {
			oauthOn, persist, token := "off", "-", "-"
			if s.OAuth {
				oauthOn, persist, token = "on", s.Persist, tokenCell(s.Token, s.TokenError)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Transport, s.Identity, oauthOn, persist, token)
		}
	}
	return w.Flush()
}

// completeServerNames offers the HTTP/SSE servers of the config.
func (a *app) completeServerNames(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cfg, err := config.Load(a.configPath)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, s := range cfg.Servers {
		if s.Transport != config.Stdio {
			names = append(names, s.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
