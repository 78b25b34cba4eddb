package main

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
	"github.com/spf13/cobra"
)

// versionInfo is 'pgward version --json'.
type versionInfo struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	// RepositoryFormat is the newest repository format this build writes; ManifestFormat
	// the backup manifest's.
	RepositoryFormat int    `json:"repository_format"`
	ManifestFormat   int    `json:"manifest_format"`
	Platform         string `json:"platform"`
}

func newVersionCmd(o *config.Options) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print pgward's version, the Go version it was built with, and the formats it writes",
		Example: "  pgward version\n  pgward version --json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := versionInfo{Version: version, Go: runtime.Version(), RepositoryFormat: repo.FormatVersion, ManifestFormat: repo.ManifestFormat,
				Platform: runtime.GOOS + "/" + runtime.GOARCH}
			if o.JSON {
				b, _ := json.MarshalIndent(v, "", "  ")
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pgward %s (%s, %s; repository format %d, manifest format %d)\n", v.Version, v.Go, v.Platform, v.RepositoryFormat, v.ManifestFormat)
			return nil
		},
	}
}
