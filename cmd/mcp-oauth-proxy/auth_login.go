package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
)

func (a *app) authLoginCommand() *cobra.Command {
	var flags authFlags
	var eng engineFlags
	cmd := &cobra.Command{
		Use:   "login TARGET",
		Short: "Log in to a server now and store its tokens in the keychain",
		Long: `login runs the MCP authorization flow for TARGET — a server name from the config, or an
http(s) URL (kept whole, query included, e.g. https://huggingface.co/mcp?login) — and stores
the tokens in the keychain, where serve and fast-agent find them. It probes the server for
its challenge, discovers the authorization server, registers a client when needed, prints a
link to open in a browser, and waits for the redirect on http://localhost:3030/callback.
If the browser is on another machine, paste the URL it ends on into this terminal.`,
		Args: usage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.login(cmd, args[0], &flags, eng)
		},
		ValidArgsFunction: a.completeServerNames,
	}
	flags.register(cmd)
	eng.register(cmd)
	return cmd
}

func (a *app) login(cmd *cobra.Command, target string, flags *authFlags, eng engineFlags) error {
	s, err := a.resolveTarget(target, flags)
	if err != nil {
		return err
	}
	if s.Auth.Persist == "memory" {
		return errors.New("persist is memory: tokens from `auth login` would be lost when it exits; use `serve`, which keeps them while it runs, or persist: keyring")
	}
	kc, _ := a.stores()
	if st := kc.Status(); !st.Writable {
		return fmt.Errorf("the keychain cannot store tokens (%s); `serve` can still log in and keep them in memory", st.Reason)
	}
	ctx := cmd.Context()
	engine := a.newEngine(ctx, eng)
	defer engine.Close()
	h := engine.Handler(a.oauthServer(s))
	tok, err := h.Login(ctx)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			// Ctrl-C (main's signal context): the user gave up the login,
			// so the link is of no use; exit as a shell does on SIGINT.
			return exitError{code: exitInterrupted, err: errors.New("login cancelled")}
		}
		return err
	}
	if st := kc.Status(); !st.Writable {
		return fmt.Errorf("logged in, but the tokens could not be saved in the keychain (%s); they are lost when this command exits", st.Reason)
	}
	id := h.Identity()
	fmt.Fprintf(a.stdout, "Logged in to %s.\n", s.Name)
	fmt.Fprintf(a.stdout, "Identity:   %s\n", redact.URL(id))
	fmt.Fprintf(a.stdout, "Stored in:  %s, as %s\n", kc.Status().Backend, oauth.TokensKey(redact.URL(id)))
	fmt.Fprintf(a.stdout, "Expires:    %s\n", describeExpiry(tok, time.Now()))
	if tok.Scope != "" {
		fmt.Fprintf(a.stdout, "Scope:      %s\n", printable(tok.Scope)) // as the server wrote it
	}
	return nil
}

func describeExpiry(tok *oauth.Token, now time.Time) string {
	if tok.ExpiresAt.IsZero() {
		return "not said by the server"
	}
	s := tok.ExpiresAt.UTC().Format("2006-01-02 15:04:05 UTC") + " (in " + humanDuration(tok.ExpiresAt.Sub(now)) + ")"
	if tok.RefreshToken != "" {
		s += "; refreshed automatically"
	}
	return s
}

func isURL(s string) bool {
	return strings.Contains(s, "://")
}
