// Command spotfuse labels the pathological region of every spot of a
// spatial-transcriptomics section from its H&E patch and its expression.
//
// Each subcommand lives in its own file and registers itself with root in an
// init function; the commands are thin: they parse flags and call packages.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

var verbose bool

var root = &cobra.Command{
	Use:           "spotfuse",
	Short:         "Self-supervised fusion of H&E images and expression for spatial transcriptomics",
	Version:       version,
	SilenceUsage:  true,
	SilenceErrors: true,
	PersistentPreRun: func(cmd *cobra.Command, args []string) {
		level := slog.LevelInfo
		if verbose {
			level = slog.LevelDebug
		}
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	},
}

func init() {
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "debug logging")
}

func main() {
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "spotfuse:", err)
		os.Exit(1)
	}
}
