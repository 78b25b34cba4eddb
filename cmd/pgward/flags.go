package main

import (
	"fmt"
	"runtime"

	"github.com/pgward/pgward/compress"
	"github.com/spf13/cobra"
)

// codecFlag parses the command's --compress option.
func codecFlag(cmd *cobra.Command) (compress.Codec, error) {
	spec, _ := cmd.Flags().GetString("compress")
	codec, err := compress.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("--compress: %w", err)
	}
	return codec, nil
}

// jobsFlag reads --jobs; zero or negative workers is a mistake, not "default".
func jobsFlag(cmd *cobra.Command) (int, error) {
	jobs, err := cmd.Flags().GetInt("jobs")
	if err != nil {
		return 0, err
	}
	if jobs < 1 {
		return 0, fmt.Errorf("--jobs %d: give at least 1 parallel worker (default: the number of CPUs, %d)", jobs, runtime.NumCPU())
	}
	return jobs, nil
}
