package main

import (
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/wal"
	"github.com/pgward/pgward/wal/archive"
	"github.com/spf13/cobra"
)

func spoolBase(o *config.Options) string { return archive.SpoolBase(o.SpoolPath) }

func newArchivePushCmd(o *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use: "archive-push PATH",
		Example: `  archive_command = 'pgward archive-push --config /etc/pgward/pgward.toml %p'
  pgward archive-push --repo /var/lib/pgward --cluster main pg_wal/000000010000000000000003`,
		Short: "Archive a WAL file (PostgreSQL's archive_command)",
		Long: `Validate the WAL file at PATH (a segment of this cluster, a .partial segment,
a timeline history or a backup history file), compress and encrypt it like
backup data, and store it in every repository. Exits 0 only when the file is
durable everywhere. Pushing identical bytes again succeeds; different bytes
under an archived name fail and change nothing.

  archive_command = 'pgward archive-push --config /etc/pgward/pgward.toml --cluster main %p'

With --push-ahead N (default 4) it also pushes the next N segments PostgreSQL
has marked ready, in parallel, so that the following calls return at once.`,
		Args: exactArgs("PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cluster, err := clusterName(o)
			if err != nil {
				return err
			}
			repos, err := openRepos(ctx, o)
			if err != nil {
				return err
			}
			// The spool is opened even without push-ahead: an earlier call
			// (or another configuration) may have pushed this segment ahead.
			pushOpts := archive.PushOptions{Cluster: cluster, Codec: o.WALCompress, Ahead: o.PushAhead, Log: slog.Default(),
				Spool: archive.OpenSpool(spoolBase(o), cluster, repos)}
			return archive.Push(ctx, repos, args[0], pushOpts)
		},
	}
	return cmd
}

func newArchiveGetCmd(o *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "archive-get NAME DEST",
		Example: `  restore_command = 'pgward archive-get --config /etc/pgward/pgward.toml %f %p'`,
		Short:   "Fetch a WAL file from the archive (PostgreSQL's restore_command)",
		Long: `Fetch the WAL file NAME from the first repository that has a good copy,
verify it, and write it to DEST atomically. Exit 1, quietly, when no
repository has it (PostgreSQL probes for files that do not exist). Every other
failure (a corrupt copy in every repository that has it, a repository that
cannot be read or decrypted, a wrong passphrase, a bad option) exits 200, so
that PostgreSQL stops recovery with the error in its log instead of ending it
early: it reads any status up to 125 as "not archived".

  restore_command = 'pgward archive-get --config /etc/pgward/pgward.toml --cluster main %f %p'

With --prefetch N (default 8) a background process fetches the next N
segments into the spool, so that the following calls return at once.`,
		Args: exactArgs("NAME", "DEST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cluster, err := clusterName(o)
			if err != nil {
				return err
			}
			repos, err := openReadRepos(ctx, o)
			if err != nil {
				return err
			}
			getOpts := archive.GetOptions{Cluster: cluster, Log: slog.Default()}
			if o.Prefetch > 0 {
				getOpts.Spool = archive.OpenSpool(spoolBase(o), cluster, repos)
			}
			if o.PrefetchAfter != "" {
				return archive.Prefetch(ctx, repos, o.PrefetchAfter, uint64(o.SegmentSize), o.Prefetch, getOpts)
			}
			// Recovery will ask for the following segments next: a prefetcher
			// started now fetches them while this call fetches its own.
			early := false
			if n, err := wal.ParseName(args[0]); err == nil && n.Kind == wal.Segment && getOpts.Spool != nil && !getOpts.Spool.PrefetcherRunning() {
				startPrefetch(args[0], 0)
				early = true
			}
			f, found, err := archive.Get(ctx, repos, args[0], args[1], getOpts)
			if err != nil {
				return err
			}
			if !found {
				return &exitError{code: exitNotArchived}
			}
			if getOpts.Spool != nil && f.SegSize > 0 && !early && !getOpts.Spool.PrefetcherRunning() {
				startPrefetch(args[0], f.SegSize)
			}
			return nil
		},
	}
	return cmd
}

// startPrefetch re-runs this command line in the background as a prefetcher
// and does not wait for it: PostgreSQL is waiting for this call to return.
func startPrefetch(name string, segSize uint64) {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	args := append([]string{}, os.Args[1:]...)
	args = append(args, "--prefetch-after", name, "--segment-size", strconv.FormatUint(segSize, 10))
	c := exec.Command(exe, args...)
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
		c.Stdin, c.Stdout, c.Stderr = devnull, devnull, devnull
	}
	if err := c.Start(); err == nil {
		_ = c.Process.Release()
	}
}
