package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/config"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/oauth"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/store"
)

const defaultConfigPath = "fastagent.config.yaml"

// app is what every subcommand shares: the standard streams, the global
// flags and the stores. Tests build one with fakes.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	configPath string
	configSet  bool // --config was given explicitly
	verbose    bool
	logFormat  string

	logger *slog.Logger

	// adminDefault is the status page's address when serve is given no
	// --admin, and where auth status looks for a running serve:
	// defaultAdminAddr for the real command (run sets it). "", as in
	// tests that build an app, means no page unless --admin asks.
	adminDefault string

	// keychainBackend replaces the OS keychain in tests; nil uses go-keyring.
	keychainBackend store.Backend
	keychain        *store.Keychain
	memory          *store.Memory
}

// run executes the command line args and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, adminDefault: defaultAdminAddr}
	return a.run(ctx, args)
}

func (a *app) run(ctx context.Context, args []string) int {
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ex exitError
	if errors.As(err, &ex) {
		if ex.err != nil {
			fmt.Fprintf(a.stderr, "mcp-oauth-proxy: %s\n", printableLines(ex.err.Error()))
		}
		return ex.code
	}
	fmt.Fprintf(a.stderr, "mcp-oauth-proxy: %s\n", printableLines(err.Error()))
	return 1
}

// exitInterrupted is the exit code of a command the user interrupted
// (Ctrl-C): 128 + SIGINT, as shells report it.
const exitInterrupted = 130

// exitError carries a specific exit code; err, when set, is printed first.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "mcp-oauth-proxy",
		Short: "Let OAuth-unaware MCP clients use OAuth-protected remote MCP servers",
		Long: `mcp-oauth-proxy reads a fast-agent config (fastagent.config.yaml) and opens one local
listener per HTTP or SSE server. It forwards every request upstream with the stored bearer
token and runs the MCP authorization flow when the upstream asks for it. Tokens live in the
OS keychain in the layout fast-agent uses, so logins are shared with it.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			a.configSet = cmd.Flags().Changed("config")
			return a.setUpLogging()
		},
	}
	root.PersistentFlags().StringVar(&a.configPath, "config", defaultConfigPath,
		"fast-agent config `file`; fastagent.secrets.yaml (or fast-agent.secrets.yaml) next to it is merged over it")
	root.PersistentFlags().BoolVarP(&a.verbose, "verbose", "v", false, "log debug details on stderr")
	root.PersistentFlags().StringVar(&a.logFormat, "log-format", "text", "log format on stderr: text or json")
	root.AddCommand(a.serveCommand(), a.checkCommand(), a.authCommand())
	// Usage errors exit with 2, as auth clear's own does.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitError{code: 2, err: err} })
	// Runnable, so that an unknown command fails the argument check
	// rather than printing the help and exiting 0.
	root.Args = usage(cobra.NoArgs)
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	return root
}

// usage makes an argument check's error a usage error (exit code 2).
func usage(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return exitError{code: 2, err: err}
		}
		return nil
	}
}

func (a *app) setUpLogging() error {
	level := slog.LevelInfo
	if a.verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch a.logFormat {
	case "text":
		h = slog.NewTextHandler(a.stderr, opts)
	case "json":
		h = slog.NewJSONHandler(a.stderr, opts)
	default:
		return fmt.Errorf("--log-format must be text or json, not %q", a.logFormat)
	}
	// A second line of defence: attributes named like secrets are
	// fingerprinted whoever logs them.
	a.logger = slog.New(redact.NewHandler(h))
	return nil
}

// loadConfig reads the config. When the file is missing and --config was
// not given and required is false, it returns (nil, nil): commands that
// take a URL work without a config.
func (a *app) loadConfig(required bool) (*config.Config, error) {
	cfg, err := config.Load(a.configPath)
	if errors.Is(err, os.ErrNotExist) && !required && !a.configSet {
		return nil, nil
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			abs, _ := filepath.Abs(a.configPath)
			return nil, fmt.Errorf("no config file at %s (use --config FILE)", abs)
		}
		return nil, err
	}
	for _, w := range cfg.Warnings {
		a.logger.Warn(w)
	}
	return cfg, nil
}

// stores returns the keychain (falling back to memory for the rest of the
// process when it is unusable) and the process memory store.
func (a *app) stores() (*store.Keychain, *store.Memory) {
	if a.memory == nil {
		a.memory = new(store.Memory)
		a.keychain = &store.Keychain{Backend: a.keychainBackend, Fallback: a.memory, Logger: a.logger}
	}
	return a.keychain, a.memory
}

// storeFor returns the store that persist selects.
func (a *app) storeFor(persist string) oauth.Store {
	kc, mem := a.stores()
	if persist == "memory" {
		return mem
	}
	return kc
}

// credentials returns the record reader/writer over the store persist selects.
func (a *app) credentials(persist string) *oauth.Credentials {
	return &oauth.Credentials{Store: a.storeFor(persist), Logger: a.logger}
}
