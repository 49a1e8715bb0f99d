package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/config"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
)

func (a *app) checkCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Validate the config and show every server, its identity and token",
		Long: `check loads the config (with its secrets file and ${VAR} expansion), reports
every problem it finds, and prints one row per configured server: transport, URL, whether
OAuth is on, where tokens persist, the identity tokens are stored under, the stored token's
state and the local listen address. It never prints a secret and needs no network.`,
		Args: usage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig(true)
			if err != nil {
				return err
			}
			return a.check(cfg)
		},
	}
}

func (a *app) check(cfg *config.Config) error {
	now := time.Now()
	source := cfg.Path
	if cfg.SecretsPath != "" {
		source += " + " + cfg.SecretsPath
	}
	fmt.Fprintf(a.stdout, "Config: %s\n", source)
	fmt.Fprintf(a.stdout, "Keychain: %s\n\n", a.keychainLine())

	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tTRANSPORT\tURL\tOAUTH\tPERSIST\tIDENTITY\tTOKEN\tLISTEN")
	for _, s := range cfg.Servers {
		if s.Transport == config.Stdio {
			fmt.Fprintf(w, "%s\tstdio\t%s\t-\t-\t-\t-\t-\n", s.Name, s.Command)
			continue
		}
		oauthOn, persist, token := "off", "-", "-"
		if s.Auth.OAuth {
			oauthOn, persist = "on", s.Auth.Persist
			ids := oauth.IdentityCandidates(s.URL)
			tok, _, err := a.credentials(s.Auth.Persist).Token(ids...)
			if err != nil {
				token = "unreadable: " + unreadableRecord(err, ids...)
			} else {
				token = newTokenState(tok, now).String()
			}
		}
		listen := cfg.Listen[s.Name]
		if listen == "" {
			listen = "auto"
		}
		// The query may hold an API key: its secret values are fingerprinted.
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Transport, redact.URLString(s.URL),
			oauthOn, persist, redact.URL(oauth.Identity(s.URL)), token, listen)
	}
	return w.Flush()
}

// keychainLine describes the keychain backend in one line.
func (a *app) keychainLine() string {
	kc, _ := a.stores()
	st := kc.Status()
	if !st.Available {
		return fmt.Sprintf("unavailable (%s); tokens stay in memory for this process", st.Reason)
	}
	if !st.Writable {
		return st.Backend + ", not writable"
	}
	return st.Backend + ", available and writable"
}
