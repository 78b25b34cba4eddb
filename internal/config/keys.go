package config

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Kind is how a key's text is read.
type Kind int

const (
	String Kind = iota
	// List takes several values: a repeated flag, a comma-separated
	// environment variable, a TOML array.
	List
	Bool
	Int
	Duration
	// Size is a number of bytes, with or without a unit (8GiB, 500MB, 0).
	Size
	// Codec is a compression spec (zstd, zstd:N, lz4, none).
	Codec
	// Passphrase keys name where the passphrase comes from; they are resolved
	// together (see Passphrase), not one by one.
	Passphrase
	// Percent is a share from 0 to 100, with or without a % sign (5%, 0.5, 100%).
	Percent
)

var kindNames = [...]string{String: "string", List: "list", Bool: "bool", Int: "int", Duration: "duration",
	Size: "size", Codec: "codec", Passphrase: "passphrase source", Percent: "percent"}

func (k Kind) String() string { return kindNames[k] }

// Layers is a set of the places a key may be set in, besides its default.
type Layers int

const (
	FlagLayer Layers = 1 << iota
	EnvLayer
	FileLayer
	allLayers = FlagLayer | EnvLayer | FileLayer
)

// Key is one setting: the one place that names it for the command line, the
// environment and the file, says what it holds and which commands take it.
type Key struct {
	// Name is the long flag name and the file key, unless FlagName or FileName
	// says otherwise; the environment variable is PGWARD_ + Name in upper snake case.
	Name string
	Kind Kind
	// Default is the value's text when no layer sets it; DocDefault describes a
	// default that is not a fixed text (computed, or decided by whoever uses it).
	Default    string
	DocDefault string
	// Unit follows the value in messages and in the reference (max-rate is in kB/s).
	Unit string
	Help string
	// Commands take the key; nil means every command (a persistent flag).
	Commands []string
	// Group names the kind of repository whose options these are (S3Group,
	// AzureGroup, GCSGroup, SFTPGroup); a restore_command carries them.
	Group string
	// IsPath keys hold a file path, which a restore_command carries absolute (the
	// server runs it in another directory).
	IsPath bool
	// In is where the key may be set; 0 means everywhere.
	In Layers
	// TopLevelOnly keys apply to the whole program, so a [cluster.NAME] table
	// refuses them.
	TopLevelOnly bool
	// Hidden keys are private to pgward (archive-get's prefetcher): flags only,
	// left out of help and of the reference.
	Hidden bool
	// FlagName and FileName replace Name on the command line or in the file.
	FlagName, FileName string
	// Short is the one-letter flag of the most used options ("" for none).
	Short string
	// Values are the texts the key accepts, when they are a fixed set (for completion).
	Values []string
	// SplitCommas makes every text a comma-separated list, not only the
	// environment's.
	SplitCommas bool

	// emptyUnset keys treat an empty text as not given, so that the next layer
	// decides: an empty cluster name or passphrase names nothing.
	emptyUnset bool
	// field is the Options field the key sets; its type matches Kind.
	field func(*Options) any
	// check refuses a parsed value that is out of range; its error says why
	// and is prefixed with where the value came from.
	check func(v any) error
}

// Flag is the key's flag name (without --), or "" when it has none.
func (k *Key) Flag() string {
	if !k.in(FlagLayer) {
		return ""
	}
	return cmp.Or(k.FlagName, k.Name)
}

// Env is the key's environment variable, or "" when it has none.
func (k *Key) Env() string {
	if !k.in(EnvLayer) {
		return ""
	}
	return "PGWARD_" + strings.ToUpper(strings.ReplaceAll(k.Name, "-", "_"))
}

// FileKey is the key's name in the config file, or "" when the file cannot set it.
func (k *Key) FileKey() string {
	if !k.in(FileLayer) {
		return ""
	}
	return cmp.Or(k.FileName, k.Name)
}

func (k *Key) in(l Layers) bool { return k.In == 0 || k.In&l != 0 }

// TakenBy reports whether command takes the key; "" stands for every command
// (a daemon resolving a whole cluster).
func (k *Key) TakenBy(command string) bool {
	return k.Commands == nil || command == "" || slices.Contains(k.Commands, command)
}

// Keys returns the registry, in the order of the reference.
func Keys() []*Key { return registry }

// Lookup returns the key named name, or nil.
func Lookup(name string) *Key { return byName[name] }

// DefaultFile is read when it exists and no --config or PGWARD_CONFIG names a file.
const DefaultFile = "/etc/pgward/pgward.toml"

// DefaultCluster is the cluster name when nothing names one.
const DefaultCluster = "main"

// Groups of the options of remote repositories, by URL scheme.
const (
	S3Group    = "s3"
	AzureGroup = "azure"
	GCSGroup   = "gcs"
	SFTPGroup  = "sftp"
)

var (
	keepCommands   = []string{"expire", "backup"}
	daemonCommands = []string{"daemon"}
	lockCommands   = []string{"backup", "expire", "verify"}
	walCommands    = []string{"archive-push", "wal-receive"}
	spoolCommands  = []string{"archive-push", "archive-get", "wal-receive"}
	// newKeyCommands make a key with a new passphrase.
	newKeyCommands = []string{"key add", "key passwd"}
)

var registry = []*Key{
	{Name: "config", Short: "c", In: FlagLayer | EnvLayer, emptyUnset: true, DocDefault: DefaultFile + " when it exists",
		Help:  "TOML config file",
		field: func(o *Options) any { return &o.Config }},
	{Name: "repo", Short: "r", Kind: List,
		Help:  "repository location: a directory, s3://bucket/prefix, azure://container/prefix, gs://bucket/prefix or sftp://user@host[:port]/path (repeat for several repositories)",
		field: func(o *Options) any { return &o.Repos }},
	// "cluster" at the top of the file is the table of per-cluster settings, so
	// the file names its default cluster with another key.
	{Name: "cluster", Short: "C", FileName: "default-cluster", TopLevelOnly: true, emptyUnset: true, Default: DefaultCluster,
		Help:  "name of the PostgreSQL cluster inside the repository",
		field: func(o *Options) any { return &o.Cluster }},
	{Name: "passphrase", Kind: Passphrase, In: EnvLayer, emptyUnset: true,
		Help:  "the passphrase of an encrypted repository itself; only ever from the environment, never a flag or file value",
		field: func(o *Options) any { return &o.Passphrase.Value }},
	{Name: "passphrase-file", Kind: Passphrase, emptyUnset: true,
		Help:  "file holding the passphrase of an encrypted repository; it must not be accessible to group or others (chmod 600)",
		field: func(o *Options) any { return &o.Passphrase.File }},
	{Name: "passphrase-command", Kind: Passphrase, emptyUnset: true,
		Help:  "shell command that prints the passphrase of an encrypted repository",
		field: func(o *Options) any { return &o.Passphrase.Command }},
	{Name: "log-format", Values: []string{"text", "json"}, Default: "text", TopLevelOnly: true,
		Help:  "log format: text or json",
		field: func(o *Options) any { return &o.LogFormat },
		check: oneOf("text", "json")},
	{Name: "log-level", Values: []string{"debug", "info", "warn", "error"}, Default: "info", TopLevelOnly: true,
		Help:  "log level: debug, info, warn or error",
		field: func(o *Options) any { return &o.LogLevel },
		check: checked(func(s string) error {
			var l slog.Level
			if l.UnmarshalText([]byte(s)) != nil {
				return errors.New("use debug, info, warn or error")
			}
			return nil
		})},

	{Name: "s3-endpoint", Group: S3Group, DocDefault: "AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS",
		Help:  "S3 server URL, e.g. https://minio.example:9000",
		field: func(o *Options) any { return &o.S3.Endpoint }},
	{Name: "s3-region", Group: S3Group, DocDefault: "AWS_REGION or the profile's, else us-east-1; on AWS the bucket's region is found",
		Help:  "S3 region",
		field: func(o *Options) any { return &o.S3.Region }},
	{Name: "s3-path-style", Kind: Bool, Group: S3Group, Default: "false",
		Help:  "address buckets as ENDPOINT/bucket (most S3-compatible servers need it)",
		field: func(o *Options) any { return &o.S3.PathStyle }},
	{Name: "s3-sse", Group: S3Group, DocDefault: "none",
		Help:  "server-side encryption of new S3 objects: AES256 or aws:kms",
		field: func(o *Options) any { return &o.S3.SSE },
		check: checked(func(s string) error {
			if s != "" && s != "AES256" && s != "aws:kms" {
				return errors.New("use AES256 or aws:kms (or nothing for none)")
			}
			return nil
		})},
	{Name: "s3-sse-kms-key-id", Group: S3Group, DocDefault: "the account's S3 key",
		Help:  "KMS key for --s3-sse aws:kms",
		field: func(o *Options) any { return &o.S3.SSEKMSKeyID }},
	{Name: "s3-storage-class", Group: S3Group, DocDefault: "the bucket's",
		Help:  "storage class of new S3 objects, e.g. STANDARD_IA",
		field: func(o *Options) any { return &o.S3.StorageClass }},
	{Name: "s3-retry-max", Kind: Duration, Group: S3Group, Default: "2m",
		Help:  "how long to keep retrying a failing S3 request before giving up",
		field: func(o *Options) any { return &o.S3.RetryMax },
		check: positive("2m")},

	{Name: "azure-endpoint", Group: AzureGroup, DocDefault: "https://$AZURE_STORAGE_ACCOUNT.blob.core.windows.net",
		Help:  "Azure blob service URL, e.g. http://127.0.0.1:10000/devstoreaccount1 (Azurite) or a sovereign cloud's endpoint",
		field: func(o *Options) any { return &o.Azure.Endpoint }},
	{Name: "azure-retry-max", Kind: Duration, Group: AzureGroup, Default: "2m",
		Help:  "how long to keep retrying a failing Azure request before giving up",
		field: func(o *Options) any { return &o.Azure.RetryMax },
		check: positive("2m")},

	{Name: "gcs-endpoint", Group: GCSGroup, DocDefault: "https://storage.googleapis.com/storage/v1/",
		Help:  "GCS JSON API URL, e.g. a private endpoint, or http://127.0.0.1:4443/storage/v1/ for an emulator (plain http sends no credentials)",
		field: func(o *Options) any { return &o.GCS.Endpoint }},
	{Name: "gcs-retry-max", Kind: Duration, Group: GCSGroup, Default: "2m",
		Help:  "how long to keep retrying a failing GCS request before giving up",
		field: func(o *Options) any { return &o.GCS.RetryMax },
		check: positive("2m")},

	{Name: "sftp-identity-file", Group: SFTPGroup, IsPath: true, DocDefault: "the ssh agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa",
		Help:  "private key to log in to SFTP repositories with (unencrypted, chmod 600; keys with a passphrase go in the ssh agent)",
		field: func(o *Options) any { return &o.SFTP.IdentityFile }},
	{Name: "sftp-known-hosts", Group: SFTPGroup, IsPath: true, DocDefault: "~/.ssh/known_hosts",
		Help:  "known_hosts file holding the SFTP hosts' keys; an unknown host is refused",
		field: func(o *Options) any { return &o.SFTP.KnownHosts }},
	{Name: "sftp-accept-new-host-key", Kind: Bool, Group: SFTPGroup, Default: "false",
		Help:  "record the key of an SFTP host that known_hosts does not name yet instead of refusing it (ssh's accept-new); a changed key is refused all the same",
		field: func(o *Options) any { return &o.SFTP.AcceptNewHostKey }},
	{Name: "sftp-retry-max", Kind: Duration, Group: SFTPGroup, Default: "2m",
		Help:  "how long to keep retrying (and reconnecting) a failing SFTP request before giving up",
		field: func(o *Options) any { return &o.SFTP.RetryMax },
		check: positive("2m")},

	{Name: "encrypt", Kind: Bool, Default: "false", Commands: []string{"init"},
		Help:  "encrypt the repository (AES-256-GCM) with a passphrase",
		field: func(o *Options) any { return &o.Encrypt }},
	{Name: "chunk-size-kib", Kind: Int, Default: "4096", Commands: []string{"init"},
		Help:  "size of the chunks file data is split into, in KiB (64 to 65536)",
		field: func(o *Options) any { return &o.ChunkSizeKiB },
		check: checked(func(n int) error {
			if n < 64 || n > 65536 {
				return errors.New("give a size from 64 to 65536 (KiB)")
			}
			return nil
		})},

	{Name: "format", Kind: Int, Default: "2", Commands: []string{"init"},
		Help:  "repository format: 2 (packs, page deltas; the default) or 1 (readable by pgward releases before format 2)",
		field: func(o *Options) any { return &o.Format },
		check: checked(func(n int) error {
			if n != 1 && n != 2 {
				return errors.New("give 1 or 2")
			}
			return nil
		})},

	// The new passphrase of key add and key passwd is a setting of its own, read
	// like the passphrase: the value only from the environment, a file from the
	// flag or the environment, never from the config file (it changes once).
	{Name: "new-passphrase", In: EnvLayer, emptyUnset: true, Commands: newKeyCommands,
		Help:  "the new passphrase itself; only ever from the environment, never a flag or file value",
		field: func(o *Options) any { return &o.NewPassphrase.Value }},
	{Name: "new-passphrase-file", In: FlagLayer | EnvLayer, emptyUnset: true, Commands: newKeyCommands,
		Help:  "file holding the new passphrase; it must not be accessible to group or others (chmod 600). Without it or PGWARD_NEW_PASSPHRASE the new passphrase is asked on the terminal, twice",
		field: func(o *Options) any { return &o.NewPassphrase.File }},
	{Name: "key-note", FlagName: "note", In: FlagLayer, Commands: newKeyCommands,
		DocDefault: "key passwd: the replaced key's note",
		Help:       "what the new key is for, shown by key list",
		field:      func(o *Options) any { return &o.KeyNote }},

	{Name: "conn", Short: "d", Commands: []string{"backup", "check", "wal-receive"},
		Help:  "libpq connection string or URI of the server (PGHOST, PGPORT, PGUSER and the other libpq variables apply)",
		field: func(o *Options) any { return &o.Conn }},
	{Name: "compress", Values: []string{"zstd", "zstd:1", "zstd:3", "zstd:9", "lz4", "none"}, Kind: Codec, Default: "zstd:3", Commands: []string{"backup"},
		Help:  "compression of backups: zstd, zstd:N (1-19), lz4 or none",
		field: func(o *Options) any { return &o.Compress }},
	{Name: "jobs", Short: "j", Kind: Int, Default: strconv.Itoa(runtime.NumCPU()), DocDefault: "the number of CPUs",
		Commands: []string{"backup", "restore", "drill", "verify"},
		Help:     "parallel workers (backup: chunk workers; restore: chunk readers and writers; verify: objects read at once)",
		field:    func(o *Options) any { return &o.Jobs },
		check: checked(func(n int) error {
			if n < 1 {
				return fmt.Errorf("give at least 1 parallel worker (default: the number of CPUs, %d)", runtime.NumCPU())
			}
			return nil
		})},
	{Name: "checkpoint", Values: []string{"fast", "spread"}, Default: "spread", Commands: []string{"backup"},
		Help:  "checkpoint at backup start: fast (immediate I/O burst) or spread (waits for checkpoint_completion_target)",
		field: func(o *Options) any { return &o.Checkpoint },
		check: oneOf("fast", "spread")},
	{Name: "max-rate", Kind: Int, Default: "0", Unit: "kB/s", Commands: []string{"backup"},
		Help:  "limit the server's send rate in kB/s (0: unlimited)",
		field: func(o *Options) any { return &o.MaxRate },
		check: checked(func(n int) error {
			if n < 0 || (n > 0 && n < 32) {
				return errors.New("give 0 (unlimited) or at least 32 kB/s, PostgreSQL's minimum")
			}
			return nil
		})},
	{Name: "estimate", Kind: Bool, Default: "false", DocDefault: "true when stderr is a terminal, else false", Commands: []string{"backup"},
		Help:  "ask the server for the backup's size first (BASE_BACKUP PROGRESS: one pass over every file's size before the data, ~40 ms for 13,000 files), for the progress bar's total, percentage and ETA and for pg_stat_progress_basebackup's backup_total on the server; without it, logged progress takes the previous backup's size as its total",
		field: func(o *Options) any { return &o.Estimate }},
	{Name: "label", DocDefault: "pgward <ID>", Commands: []string{"backup"},
		Help:  "backup label",
		field: func(o *Options) any { return &o.Label }},
	{Name: "no-incremental", Kind: Bool, Default: "false", Commands: []string{"backup"},
		Help:  "take a full BASE_BACKUP even where an INCREMENTAL one is possible (PostgreSQL 17+ with summarize_wal = on)",
		field: func(o *Options) any { return &o.NoIncremental }},
	{Name: "backup-standby", Default: "off", Commands: []string{"backup"},
		Help:  "off: back up the server at --conn, primary or standby; on: --conn must be a standby of the primary at --primary-conn; prefer: as on, but back up the primary when the standby cannot be used",
		field: func(o *Options) any { return &o.BackupStandby },
		check: oneOf("off", "on", "prefer")},
	{Name: "primary-conn", Commands: []string{"backup"},
		Help:  "libpq connection string or URI of the primary, for --backup-standby on or prefer: the standby must have its system identifier and timeline",
		field: func(o *Options) any { return &o.PrimaryConn }},

	{Name: "json", Kind: Bool, Default: "false", Commands: []string{"list", "expire", "key list", "drill", "check", "version", "backup", "restore", "verify", "info"},
		Help:  "print a JSON object",
		field: func(o *Options) any { return &o.JSON }},

	{Name: "pgdata", Short: "D", Commands: []string{"restore"},
		Help:  "directory to restore into (must be empty or absent; required)",
		field: func(o *Options) any { return &o.Restore.PGData }},
	{Name: "backup", Short: "b", Default: "latest", Commands: []string{"restore", "drill"},
		Help:  "backup ID to restore, or latest (the newest readable one that can reach the target)",
		field: func(o *Options) any { return &o.Restore.Backup }},
	{Name: "tablespace-map", Kind: List, SplitCommas: true, Commands: []string{"restore"},
		Help:  "move a tablespace: OID=DIR (repeatable)",
		field: func(o *Options) any { return &o.Restore.TablespaceMap }},
	{Name: "target-time", Commands: []string{"restore", "drill"},
		Help:  "recover to this time (PostgreSQL timestamp syntax, zone optional); drill also takes random (a random point in the window after the backup)",
		field: func(o *Options) any { return &o.Restore.TargetTime }},
	{Name: "target-lsn", Commands: []string{"restore"},
		Help:  "recover to this WAL position (e.g. 0/3000060)",
		field: func(o *Options) any { return &o.Restore.TargetLSN }},
	{Name: "target-xid", Commands: []string{"restore"},
		Help:  "recover to this transaction ID",
		field: func(o *Options) any { return &o.Restore.TargetXID }},
	{Name: "target-name", Commands: []string{"restore"},
		Help:  "recover to this restore point (pg_create_restore_point)",
		field: func(o *Options) any { return &o.Restore.TargetName }},
	{Name: "target-immediate", Kind: Bool, Default: "false", Commands: []string{"restore"},
		Help:  "stop as soon as the backup is consistent",
		field: func(o *Options) any { return &o.Restore.TargetImmediate }},
	{Name: "target-exclusive", Kind: Bool, Default: "false", Commands: []string{"restore"},
		Help:  "stop just before the target instead of just after it",
		field: func(o *Options) any { return &o.Restore.TargetExclusive }},
	{Name: "target-action", Values: []string{"promote", "pause", "shutdown"}, DocDefault: "promote", Commands: []string{"restore"},
		Help:  "after reaching the target: promote, pause or shutdown",
		field: func(o *Options) any { return &o.Restore.TargetAction }},
	{Name: "target-timeline", Values: []string{"latest", "current"}, Default: "latest", Commands: []string{"restore"},
		Help:  "timeline to recover along: latest (the newest that descends from the backup), current or a number",
		field: func(o *Options) any { return &o.Restore.TargetTimeline }},
	{Name: "stop-at-gap", Kind: Bool, Default: "false", Commands: []string{"restore"},
		Help:  "with a gap in the archive, recover up to the gap instead of refusing",
		field: func(o *Options) any { return &o.Restore.StopAtGap }},
	{Name: "archive-mode", Values: []string{"off", "preserve"}, Default: "off", Commands: []string{"restore"},
		Help:  "off: the restored cluster does not archive; preserve: keep the source's archive settings",
		field: func(o *Options) any { return &o.Restore.ArchiveMode },
		check: checked(func(s string) error {
			if s != "off" && s != "preserve" {
				return errors.New("use off (the default: the restored copy does not archive) or preserve (keep the source's archive settings)")
			}
			return nil
		})},
	{Name: "skip-restore-command-check", Kind: Bool, Default: "false", Commands: []string{"restore"},
		Help:  "do not try the restore_command before restoring (when only the server's environment can run it)",
		field: func(o *Options) any { return &o.Restore.SkipRestoreCommandCheck }},
	{Name: "owner", DocDefault: "owner of the --pgdata parent directory", Commands: []string{"restore"},
		Help:  "when run as root, the user to own the restored files",
		field: func(o *Options) any { return &o.Restore.Owner }},
	{Name: "delta", Kind: Bool, Default: "false", Commands: []string{"restore"},
		Help:  "rewrite an existing data directory of the same cluster, writing only the files and chunks that differ and removing what the backup does not have (the server must be stopped)",
		field: func(o *Options) any { return &o.Restore.Delta }},
	{Name: "delta-check", Default: "hash", Commands: []string{"restore"},
		Help:  "how --delta finds what differs: hash (read and hash every chunk of the existing files) or size-time (keep a file whose size and modification time equal the backup's without reading it)",
		field: func(o *Options) any { return &o.Restore.DeltaCheck },
		check: oneOf("hash", "size-time")},
	{Name: "standby", Kind: Bool, Default: "false", Commands: []string{"restore"},
		Help:  "restore a streaming standby: standby.signal and primary_conninfo (needs --primary-conninfo); it falls back to the archive through restore_command",
		field: func(o *Options) any { return &o.Restore.Standby }},
	{Name: "primary-conninfo", Commands: []string{"restore"},
		Help:  "with --standby: libpq connection string the standby streams from (written as primary_conninfo)",
		field: func(o *Options) any { return &o.Restore.PrimaryConnInfo }},
	{Name: "primary-slot-name", Commands: []string{"restore"},
		Help:  "with --standby: the primary's physical replication slot to stream through (written as primary_slot_name)",
		field: func(o *Options) any { return &o.Restore.PrimarySlotName }},
	{Name: "db-include", Kind: List, SplitCommas: true, Commands: []string{"restore"},
		Help:  "restore only this database (name or OID; repeatable) besides the system ones; the others' files are written empty, to be dropped",
		field: func(o *Options) any { return &o.Restore.DBInclude }},

	// Backups and WAL are compressed with different codecs by default (zstd:3
	// for backups, zstd:1 for WAL, where latency counts), so one key cannot
	// serve both. The WAL commands keep their --compress flag.
	{Name: "wal-compress", Values: []string{"zstd", "zstd:1", "zstd:3", "lz4", "none"}, FlagName: "compress", Kind: Codec, Default: "zstd:1", Commands: walCommands,
		Help:  "compression of WAL: zstd, zstd:N (1-19), lz4 or none",
		field: func(o *Options) any { return &o.WALCompress }},
	{Name: "push-ahead", Kind: Int, Default: "4", Commands: []string{"archive-push"},
		Help:  "also push up to N further ready segments in parallel (0: off)",
		field: func(o *Options) any { return &o.PushAhead }},
	{Name: "spool-path", Commands: spoolCommands,
		DocDefault: "/var/spool/pgward if it exists, else $TMPDIR/pgward-spool-UID",
		Help:       "local spool for push-ahead markers, prefetched WAL and received WAL ('off' disables it for archive-push and archive-get)",
		field:      func(o *Options) any { return &o.SpoolPath }},
	{Name: "prefetch", Kind: Int, Default: "8", Commands: []string{"archive-get"},
		Help:  "prefetch up to N following segments in the background (0: off)",
		field: func(o *Options) any { return &o.Prefetch }},
	{Name: "prefetch-after", In: FlagLayer, Hidden: true, Commands: []string{"archive-get"},
		field: func(o *Options) any { return &o.PrefetchAfter }},
	{Name: "segment-size", Kind: Size, Default: "0", In: FlagLayer, Hidden: true, Commands: []string{"archive-get"},
		field: func(o *Options) any { return &o.SegmentSize }},

	{Name: "slot", Commands: []string{"wal-receive"},
		Help:  "physical replication slot to use",
		field: func(o *Options) any { return &o.Receive.Slot }},
	{Name: "create-slot", Kind: Bool, Default: "false", Commands: []string{"wal-receive"},
		Help:  "create the slot when it does not exist",
		field: func(o *Options) any { return &o.Receive.CreateSlot }},
	{Name: "synchronous", Kind: Bool, Default: "false", Commands: []string{"wal-receive"},
		Help:  "confirm every write at once after fsync (for synchronous_standby_names)",
		field: func(o *Options) any { return &o.Receive.Synchronous }},
	{Name: "application-name", Default: "pgward", Commands: []string{"wal-receive"},
		Help:  "application_name the server sees (the name for synchronous_standby_names)",
		field: func(o *Options) any { return &o.Receive.ApplicationName }},
	{Name: "partial-interval", Kind: Duration, Default: "10s", Commands: []string{"wal-receive"},
		Help:  "how often the segment in progress is uploaded while connected",
		field: func(o *Options) any { return &o.Receive.PartialInterval },
		check: positive("10s")},
	{Name: "status-interval", Kind: Duration, Default: "10s", Commands: []string{"wal-receive"},
		Help:  "how often the receiver reports its position without being asked",
		field: func(o *Options) any { return &o.Receive.StatusInterval },
		check: positive("10s")},
	{Name: "max-spool", Kind: Size, Default: "8GiB", Commands: []string{"wal-receive"},
		Help:  "most the spool may hold while uploads cannot keep up (e.g. 500MiB, 20GB; 0: no limit); receiving pauses when it is full",
		field: func(o *Options) any { return &o.Receive.MaxSpool }},
	{Name: "flush-only", Kind: Bool, Default: "false", Commands: []string{"wal-receive"},
		Help:  "upload what the spool holds and exit, without a server",
		field: func(o *Options) any { return &o.Receive.FlushOnly }},

	{Name: "keep-last", Kind: Int, Default: "0", Commands: keepCommands,
		Help:  "retention: keep the N newest backups (and the WAL from the oldest of them on)",
		field: func(o *Options) any { return &o.Keep.Last }, check: notNegative},
	{Name: "keep-within", Kind: Duration, Default: "0s", Commands: keepCommands,
		Help:  "retention: keep what restores to any point within this long (e.g. 30d): the backups in it, the newest before it, and the WAL from that one on",
		field: func(o *Options) any { return &o.Keep.Within },
		check: checked(func(d time.Duration) error {
			if d < 0 {
				return errors.New("give a duration such as 30d, or 0 for none")
			}
			return nil
		})},
	{Name: "keep-daily", Kind: Int, Default: "0", Commands: keepCommands,
		Help:  "retention: keep the newest backup of each of the N most recent days that have one",
		field: func(o *Options) any { return &o.Keep.Daily }, check: notNegative},
	{Name: "keep-weekly", Kind: Int, Default: "0", Commands: keepCommands,
		Help:  "retention: keep the newest backup of each of the N most recent ISO weeks that have one",
		field: func(o *Options) any { return &o.Keep.Weekly }, check: notNegative},
	{Name: "keep-monthly", Kind: Int, Default: "0", Commands: keepCommands,
		Help:  "retention: keep the newest backup of each of the N most recent months that have one",
		field: func(o *Options) any { return &o.Keep.Monthly }, check: notNegative},
	{Name: "keep-yearly", Kind: Int, Default: "0", Commands: keepCommands,
		Help:  "retention: keep the newest backup of each of the N most recent years that have one",
		field: func(o *Options) any { return &o.Keep.Yearly }, check: notNegative},
	{Name: "dry-run", Kind: Bool, Default: "false", Commands: []string{"expire"}, In: FlagLayer,
		Help:  "print what would be removed and the bytes it would free, and remove nothing",
		field: func(o *Options) any { return &o.DryRun }},
	{Name: "note", Commands: []string{"pin"}, In: FlagLayer,
		Help:  "why the backup is pinned (shown by list and info)",
		field: func(o *Options) any { return &o.Note }},
	{Name: "pg-bin", Commands: []string{"drill", "daemon"}, DocDefault: "the cluster's major version under /usr/lib/postgresql/N/bin, /usr/pgsql-N/bin, or on PATH",
		Help:  "directory of the PostgreSQL server binaries a drill starts (the backup's major version)",
		field: func(o *Options) any { return &o.Drill.PGBin }},
	{Name: "scratch-dir", Commands: []string{"drill", "daemon"}, DocDefault: "$TMPDIR, else /tmp",
		Help:  "where a drill restores (needs room for the whole cluster; removed afterwards)",
		field: func(o *Options) any { return &o.Drill.ScratchDir }},
	{Name: "drill-timeout", Kind: Duration, Default: "1h", Commands: []string{"drill", "daemon"},
		Help:  "how long a drill may take from the restore to the end of its checks",
		field: func(o *Options) any { return &o.Drill.Timeout },
		check: positive("1h")},
	{Name: "listen", FileName: "daemon.listen", Default: "127.0.0.1:9187", TopLevelOnly: true, Commands: daemonCommands,
		Help:  "address of the daemon's HTTP server: /metrics (Prometheus), /healthz, /status (JSON), / (status page); in the file: listen in [daemon]",
		field: func(o *Options) any { return &o.Daemon.Listen }},
	{Name: "timezone", FileName: "daemon.timezone", DocDefault: "the machine's (TZ)", TopLevelOnly: true, Commands: daemonCommands,
		Help:  "time zone of the schedules, e.g. Europe/Berlin; in the file: timezone in [daemon]",
		field: func(o *Options) any { return &o.Daemon.TimeZone },
		check: checked(func(s string) error {
			if _, err := time.LoadLocation(s); s != "" && err != nil {
				return fmt.Errorf("not a time zone name (%v)", err)
			}
			return nil
		})},
	{Name: "backup-schedule", Commands: daemonCommands,
		Help:  "daemon: when to back up the cluster, in cron syntax (\"0 1 * * *\") or @every 6h, @daily, @hourly",
		field: func(o *Options) any { return &o.Daemon.BackupSchedule }, check: schedule},
	{Name: "verify-schedule", Commands: daemonCommands,
		Help:  "daemon: when to run an incremental verify of the cluster's repositories (cron syntax or @every/@daily)",
		field: func(o *Options) any { return &o.Daemon.VerifySchedule }, check: schedule},
	{Name: "drill-schedule", Commands: daemonCommands,
		Help:  "daemon: when to run a restore drill of the cluster (cron syntax or @every/@weekly)",
		field: func(o *Options) any { return &o.Daemon.DrillSchedule }, check: schedule},
	{Name: "drill-target", Values: []string{"random", "latest"}, Default: "random", Commands: daemonCommands,
		Help:  "daemon: where scheduled drills recover to: random (a random point after the backup) or latest (the end of the archived WAL)",
		field: func(o *Options) any { return &o.Daemon.DrillTarget }, check: oneOf("random", "latest")},
	{Name: "wal-stream", Kind: Bool, Default: "false", Commands: daemonCommands,
		Help:  "daemon: run a supervised wal-receive for the cluster (with the wal-receive options)",
		field: func(o *Options) any { return &o.Daemon.WALStream }},
	{Name: "rpo-target", Kind: Duration, Default: "0s", Commands: daemonCommands,
		Help:  "daemon: the recovery point objective: breached when the newest durable commit is older than this (0: none)",
		field: func(o *Options) any { return &o.Daemon.RPOTarget }},
	{Name: "rto-target", Kind: Duration, Default: "0s", Commands: daemonCommands,
		Help:  "daemon: the recovery time objective: breached when the last drill's measured RTO is longer (0: none)",
		field: func(o *Options) any { return &o.Daemon.RTOTarget }},
	{Name: "on-failure", Kind: List, Commands: daemonCommands,
		Help:  "daemon: hooks run on a failed backup, expire, verify or drill and on a breached objective: commands (run with sh -c, the event as JSON on stdin) or http(s):// URLs (POSTed the event)",
		field: func(o *Options) any { return &o.Daemon.OnFailure }},
	{Name: "on-success", Kind: List, Commands: daemonCommands,
		Help:  "daemon: hooks run on a successful backup, expire, verify or drill and on a recovered objective (as on-failure)",
		field: func(o *Options) any { return &o.Daemon.OnSuccess }},
	{Name: "hook-timeout", Kind: Duration, Default: "30s", Commands: daemonCommands,
		Help:  "daemon: how long a hook may run before it is killed",
		field: func(o *Options) any { return &o.Daemon.HookTimeout }, check: positive("30s")},
	{Name: "lock-wait", Kind: Duration, Default: "10m", Commands: lockCommands,
		Help:  "how long to wait for a repository lock held by another process (a backup or verify waits out a garbage collection sweep; expire waits for running backups and verify before it sweeps)",
		field: func(o *Options) any { return &o.LockWait },
		check: checked(func(d time.Duration) error {
			if d < 0 {
				return errors.New("give a duration such as 10m, or 0 not to wait")
			}
			return nil
		})},
	{Name: "lock-settle", Kind: Duration, Default: "0s", Commands: lockCommands,
		Help:  "wait between writing a lock and listing the others, for storage whose listings lag behind writes (S3-compatible servers without strong consistency)",
		field: func(o *Options) any { return &o.LockSettle },
		check: checked(func(d time.Duration) error {
			if d < 0 || d > 5*time.Minute {
				return errors.New("give a duration from 0 to 5m")
			}
			return nil
		})},

	{Name: "nagios", Kind: Bool, Default: "false", Commands: []string{"check"}, In: FlagLayer,
		Help:  "print one Nagios/Icinga status line and exit 0 (OK), 1 (WARNING), 2 (CRITICAL) or 3 (UNKNOWN)",
		field: func(o *Options) any { return &o.Nagios }},
	// verify's --backup has no default (every backup), unlike restore's.
	{Name: "verify-backup", FlagName: "backup", Commands: []string{"verify"}, In: FlagLayer | EnvLayer, emptyUnset: true,
		DocDefault: "every backup of the cluster",
		Help:       "verify only this backup: an ID, or latest",
		field:      func(o *Options) any { return &o.Verify.Backup }},
	{Name: "all", Kind: Bool, Default: "false", Commands: []string{"verify"}, In: FlagLayer,
		Help:  "verify every cluster, every backup and the whole WAL archive; with --read-data, every object in the repository",
		field: func(o *Options) any { return &o.Verify.All }},
	{Name: "wal", Kind: Bool, Default: "false", Commands: []string{"verify"}, In: FlagLayer,
		Help:  "verify the cluster's whole WAL archive too: gaps per timeline, history files; with --read-data every WAL file and summary is read",
		field: func(o *Options) any { return &o.Verify.WAL }},
	{Name: "read-data", Kind: Bool, Default: "false", Commands: []string{"verify"},
		Help:  "read every object in scope and check its tag and content hash (default: check that every object is present, read only metadata)",
		field: func(o *Options) any { return &o.Verify.ReadData }},
	{Name: "read-data-subset", Kind: Percent, DocDefault: "not set", Commands: []string{"verify"},
		Help:  "read the objects in scope never verified or last verified before verify-period, then the longest unverified until N% of the bytes are read (0% allowed)",
		field: func(o *Options) any { return &o.Verify.Subset }},
	{Name: "verify-period", Kind: Duration, Default: "30d", Commands: []string{"verify"},
		Help:  "read-data-subset reads every object again once its last verification is older than this",
		field: func(o *Options) any { return &o.Verify.Period },
		check: positive("30d")},

	{Name: "timeout", Kind: Duration, Default: "60s", Commands: []string{"check"},
		Help:  "how long to wait for the switched segment to be archived",
		field: func(o *Options) any { return &o.Timeout },
		check: positive("60s")},
}

var byName, byFileKey = func() (map[string]*Key, map[string]*Key) {
	n, f := map[string]*Key{}, map[string]*Key{}
	for _, k := range registry {
		n[k.Name] = k
		f[cmp.Or(k.FileName, k.Name)] = k
	}
	return n, f
}()

// checked adapts a check of one value type to the registry's.
func checked[T any](f func(T) error) func(any) error {
	return func(v any) error { return f(v.(T)) }
}

func oneOf(values ...string) func(any) error {
	return checked(func(s string) error {
		if !slices.Contains(values, s) {
			return fmt.Errorf("use %s or %s", strings.Join(values[:len(values)-1], ", "), values[len(values)-1])
		}
		return nil
	})
}

// schedule checks a cron line or @every/@daily descriptor.
var schedule = checked(func(s string) error {
	if s == "" {
		return nil
	}
	_, err := cron.ParseStandard(s)
	if err != nil {
		return fmt.Errorf("not a schedule (%v): use cron syntax such as \"0 1 * * *\", or @every 6h, @hourly, @daily, @weekly", err)
	}
	return nil
})

var notNegative = checked(func(n int) error {
	if n < 0 {
		return errors.New("give 0 (rule not used) or more")
	}
	return nil
})

func positive(example string) func(any) error {
	return checked(func(d time.Duration) error {
		if d <= 0 {
			return fmt.Errorf("give a positive duration such as %s", example)
		}
		return nil
	})
}
