package drill

import (
	"log/slog"

	"github.com/pgward/pgward/internal/cmdline"
	"github.com/pgward/pgward/internal/config"
)

// OptionsFrom maps resolved options to a drill of o.Cluster (backup and target are the
// caller's: the CLI takes --backup and --target-time, the daemon its drill-target).
func OptionsFrom(o *config.Options) (Options, error) {
	rc, err := cmdline.RestoreCommand(o)
	if err != nil {
		return Options{}, err
	}
	return Options{Cluster: o.Cluster, PGBin: o.Drill.PGBin, ScratchDir: o.Drill.ScratchDir, RestoreCommand: rc,
		Jobs: o.Jobs, Timeout: o.Drill.Timeout, Log: slog.Default()}, nil
}
