package main

import (
	"github.com/spf13/cobra"
)

func (a *app) authCommand() *cobra.Command {
	status := a.authStatusCommand()
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Inspect and manage stored OAuth logins (default: auth status)",
		Args:  status.Args,
		RunE:  status.RunE,
	}
	cmd.Flags().AddFlagSet(status.Flags())
	cmd.AddCommand(status, a.authLoginCommand(), a.authClearCommand())
	return cmd
}
