package main

import (
	"fmt"

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
