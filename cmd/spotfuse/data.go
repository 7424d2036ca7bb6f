package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/spotfuse/spotfuse/fetch"
	"github.com/spotfuse/spotfuse/progress"
)

func init() {
	data := &cobra.Command{Use: "data", Short: "Manage public data sets"}
	var dir, baseURL string
	fetchCmd := &cobra.Command{
		Use:   "fetch her2st",
		Short: "Download a public data set into the cache, verifying SHA-256 sums",
		Long: `fetch downloads the her2st data (Andersson et al. 2021, github.com/almaan/her2st at commit
` + fetch.HER2STCommit + `) into --dir (default $XDG_CACHE_HOME/spotfuse/her2st or
~/.cache/spotfuse/her2st), laid out as counts/, spots/, labels/, images/, scalefactors.tsv.
Files already present with the right checksum are skipped; a mismatch is an error.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"her2st"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "her2st" {
				return fmt.Errorf("data fetch: unknown data set %q (known: her2st)", args[0])
			}
			res, err := fetch.HER2ST(cmd.Context(), fetch.Options{Dir: dir, BaseURL: baseURL, Progress: progress.ForTerminal()})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "her2st in %s: %d downloaded, %d already present\n", res.Dir, res.Downloaded, res.Present)
			return nil
		},
	}
	fetchCmd.Flags().StringVar(&dir, "dir", "", "cache directory")
	fetchCmd.Flags().StringVar(&baseURL, "base-url", "", "base URL of the source files (default "+fetch.HER2STBaseURL+")")
	data.AddCommand(fetchCmd)
	root.AddCommand(data)
}
