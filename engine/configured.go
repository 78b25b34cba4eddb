package engine

import (
	"log/slog"

	"github.com/pgward/pgward/internal/config"
)

// BackupOptionsFrom maps resolved options to a backup of o.Cluster: the one mapping the
// CLI's backup and the daemon's scheduled backups share.
func BackupOptionsFrom(o *config.Options) BackupOptions {
	return BackupOptions{Cluster: o.Cluster, Conn: o.Conn, Codec: o.Compress, Jobs: o.Jobs, FastCheckpoint: o.Checkpoint == "fast",
		MaxRate: o.MaxRate, Label: o.Label, NoIncremental: o.NoIncremental, Standby: o.BackupStandby, PrimaryConn: o.PrimaryConn, NoEstimate: !o.Estimate, Log: slog.Default()}
}
