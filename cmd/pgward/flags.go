package main

import (
	"fmt"
	"math"
	"runtime"

	"github.com/dustin/go-humanize"
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

// sizeFlag reads a size option such as "8GiB", "500MB" or "0".
func sizeFlag(cmd *cobra.Command, name string) (int64, error) {
	v, err := cmd.Flags().GetString(name)
	if err != nil {
		return 0, err
	}
	n, err := humanize.ParseBytes(v)
	if err != nil || n > math.MaxInt64 {
		return 0, fmt.Errorf("--%s %q: give a size such as 8GiB, 500MB or 0", name, v)
	}
	return int64(n), nil
}
