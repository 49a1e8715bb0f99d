package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/config"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/store"
)

func (a *app) authClearCommand() *cobra.Command {
	var identity string
	var all bool
	cmd := &cobra.Command{
		Use:   "clear SERVER | --identity URL | --all",
		Short: "Delete stored tokens and client registrations",
		Long: `clear deletes the tokens, the client registration and the oauth:index entry of one
configured server (by name), of one identity (--identity URL; the URL is normalized first,
so https://example.com/mcp clears https://example.com), or of every indexed identity (--all;
when the index cannot be read, of the configured servers, and the index itself).
It says what it removed.`,
		Args: usage(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			selectors := len(args)
			if identity != "" {
				selectors++
			}
			if all {
				selectors++
			}
			if selectors != 1 {
				return exitError{code: 2, err: errors.New("auth clear: give exactly one of SERVER, --identity URL or --all")}
			}
			switch {
			case all:
				return a.clearAll()
			case identity != "":
				return a.clearIdentities(oauth.Identity(identity), oauth.IdentityCandidates(identity))
			default:
				return a.clearServer(args[0])
			}
		},
		ValidArgsFunction: a.completeServerNames,
	}
	cmd.Flags().StringVar(&identity, "identity", "", "clear the identity of this `URL`")
	cmd.Flags().BoolVar(&all, "all", false, "clear every stored identity")
	return cmd
}

func (a *app) clearServer(name string) error {
	cfg, err := a.loadConfig(true)
	if err != nil {
		return err
	}
	s, ok := cfg.Server(name)
	if !ok {
		return fmt.Errorf("no server %q in %s", name, cfg.Path)
	}
	if s.Transport == config.Stdio {
		return fmt.Errorf("server %q is a stdio server: it has no stored login", name)
	}
	if s.Auth.Persist == "memory" {
		fmt.Fprintf(a.stdout, "Nothing to clear: server %s keeps its tokens in memory (persist: memory); they end with the proxy process.\n", name)
		return nil
	}
	return a.clearIdentities(oauth.Identity(s.URL), oauth.IdentityCandidates(s.URL))
}

func (a *app) clearIdentities(shown string, ids []string) error {
	if err := a.keychainReachable(); err != nil {
		return err
	}
	removed, err := a.credentials("keyring").Forget(ids...)
	a.printRemoved(removed)
	if err == nil {
		err = a.keychainStillReachable()
	}
	if len(removed) == 0 && err == nil {
		fmt.Fprintf(a.stdout, "Nothing was stored for %s.\n", redact.URL(shown))
	}
	return err
}

func (a *app) clearAll() error {
	if err := a.keychainReachable(); err != nil {
		return err
	}
	creds := a.credentials("keyring")
	ids, err := creds.Identities()
	badIndex := errors.Is(err, oauth.ErrIndexUnreadable)
	if err != nil && !badIndex {
		return err
	}
	if badIndex {
		// Nothing lists what is stored; the configured servers' identities
		// are the ones that can still be named.
		a.logger.Warn("the identity index is unreadable; clearing the configured servers' identities and the index; "+
			"clear others with auth clear --identity URL", "err", err)
		ids = a.configuredIdentities()
	}
	removed, err := creds.Forget(ids...)
	if badIndex && err == nil {
		switch derr := creds.Store.Delete(oauth.IndexKey); {
		case derr == nil:
			removed = append(removed, oauth.IndexKey)
		case !errors.Is(derr, store.ErrNotFound):
			err = derr
		}
	}
	a.printRemoved(removed)
	if err == nil {
		err = a.keychainStillReachable()
	}
	if len(removed) == 0 && err == nil {
		fmt.Fprintln(a.stdout, "Nothing was stored.")
	}
	return err
}

// configuredIdentities returns the identity keys of the config's servers
// that keep tokens in the keychain; none when there is no config.
func (a *app) configuredIdentities() []string {
	cfg, err := a.loadConfig(false)
	if err != nil || cfg == nil {
		return nil
	}
	var ids []string
	for _, s := range cfg.Servers {
		if s.Transport != config.Stdio && s.Auth.Persist != "memory" && s.URL != "" {
			ids = append(ids, oauth.IdentityCandidates(s.URL)...)
		}
	}
	return ids
}

// keychainReachable fails when the keychain is not in use. The store then
// answers from memory, where nothing of an earlier process is, while
// tokens may sit in the keychain it cannot reach: "nothing was stored"
// would be a wrong answer.
func (a *app) keychainReachable() error {
	kc, _ := a.stores()
	if st := kc.Status(); !st.Writable {
		return fmt.Errorf("keychain unavailable (%s); nothing was cleared", st.Reason)
	}
	return nil
}

// keychainStillReachable fails when the keychain was given up during the
// clear: the deletions after that went to memory.
func (a *app) keychainStillReachable() error {
	kc, _ := a.stores()
	if st := kc.Status(); !st.Writable {
		return fmt.Errorf("the keychain failed during the clear (%s); entries not listed as removed may remain", st.Reason)
	}
	return nil
}

func (a *app) printRemoved(keys []string) {
	for _, k := range keys {
		// Keys are "oauth:<kind>:<identity>"; an identity may carry userinfo.
		if i := strings.Index(k, "://"); i > 0 {
			if j := strings.LastIndexByte(k[:i], ':'); j >= 0 {
				k = k[:j+1] + redact.URL(k[j+1:])
			}
		}
		fmt.Fprintf(a.stdout, "Removed %s\n", k)
	}
}
