// Package config owns pgward's settings: the registry of keys (keys.go), the
// TOML file, and Resolve, which layers the command line, the environment and
// the file into one typed Options. The CLI and the daemon both resolve through
// it, so a setting means the same wherever it comes from and whoever reads it.
//
// Invariants:
//   - A key exists in one place, the registry: its flag, environment variable,
//     file key, kind, default, help and commands. Flags are defined from it and
//     docs/config.md is generated from it (TestReference fails when they differ).
//   - One precedence for every key, secrets included: command-line flag >
//     environment > the file's [cluster.NAME] table > the file's top level >
//     default. The passphrase keys are one setting: the first layer that names
//     any passphrase source wins as a whole (see PassphraseSource).
//   - A value is parsed and checked by one function per key whatever its layer,
//     and an error names where it came from: the flag, the variable, or the
//     file, line and table.
//   - The file is decoded once, and every key in every table is checked when it
//     is read: an unknown key, or a key that cannot be set there, is refused
//     with its line, whether or not the running command would use it. Values
//     are parsed only for the keys the command takes, so a bad backup setting
//     never stops archive-push.
package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/pgward/pgward/compress"
)

// Options are pgward's settings, resolved. Fields of keys the command does not
// take hold their defaults.
type Options struct {
	Config     string
	Repos      []string
	Cluster    string
	Passphrase PassphraseSource
	LogFormat  string
	LogLevel   string
	S3         S3
	Azure      Azure
	GCS        GCS
	SFTP       SFTP

	Encrypt      bool
	ChunkSizeKiB int
	// Format is the repository format init creates (1 or 2).
	Format int

	Conn string
	// Compress is the codec of backups; WALCompress that of archive-push and
	// wal-receive.
	Compress    compress.Codec
	WALCompress compress.Codec
	Jobs        int
	Checkpoint  string
	MaxRate     int
	Label       string
	// Estimate asks the server for the backup's size first.
	Estimate bool
	// NoIncremental keeps backups full on PostgreSQL 17+.
	NoIncremental bool
	// BackupStandby is off, on or prefer: whether backup takes the backup
	// from the standby at Conn, checked against the primary at PrimaryConn.
	BackupStandby string
	PrimaryConn   string

	JSON bool
	// Nagios makes check a monitoring plugin.
	Nagios bool

	// NewPassphrase is the passphrase key add and key passwd give the new key;
	// KeyNote says what the key is for.
	NewPassphrase NewPassphraseSource
	KeyNote       string

	Restore Restore

	SpoolPath string
	PushAhead int
	Prefetch  int
	// PrefetchAfter and SegmentSize are how archive-get starts its own
	// background prefetcher; no user sets them.
	PrefetchAfter string
	SegmentSize   int64

	Receive Receive

	Timeout time.Duration

	Drill  Drill
	Daemon Daemon

	// Keep is the retention policy (expire, and backup after it commits).
	Keep Keep
	// DryRun makes expire report without deleting.
	DryRun bool
	// Note is pin's note.
	Note string
	// LockWait and LockSettle are how repository locks are taken.
	LockWait, LockSettle time.Duration

	Verify Verify

	set map[string]setting
}

// S3 options apply to every s3:// repository.
type S3 struct {
	Endpoint, Region string
	PathStyle        bool
	SSE, SSEKMSKeyID string
	StorageClass     string
	RetryMax         time.Duration
}

// Azure options apply to every azure:// repository.
type Azure struct {
	Endpoint string
	RetryMax time.Duration
}

// GCS options apply to every gs:// repository.
type GCS struct {
	Endpoint string
	RetryMax time.Duration
}

// SFTP options apply to every sftp:// repository.
type SFTP struct {
	IdentityFile, KnownHosts string
	AcceptNewHostKey         bool
	RetryMax                 time.Duration
}

// Restore holds restore's options.
type Restore struct {
	PGData, Backup                   string
	TablespaceMap                    []string
	TargetTime, TargetLSN            string
	TargetXID, TargetName            string
	TargetImmediate, TargetExclusive bool
	TargetAction, TargetTimeline     string
	StopAtGap                        bool
	ArchiveMode                      string
	SkipRestoreCommandCheck          bool
	Owner                            string
	// Delta rewrites an existing data directory of the same cluster;
	// DeltaCheck is hash or size-time.
	Delta      bool
	DeltaCheck string
	// Standby restores a streaming standby of PrimaryConnInfo.
	Standby                          bool
	PrimaryConnInfo, PrimarySlotName string
	// DBInclude restores only these databases (and the system ones).
	DBInclude []string
}

// Daemon holds the daemon's options: listen and timezone at the top, the rest per cluster.
type Daemon struct {
	Listen, TimeZone                              string
	BackupSchedule, VerifySchedule, DrillSchedule string
	DrillTarget                                   string
	WALStream                                     bool
	RPOTarget, RTOTarget                          time.Duration
	OnFailure, OnSuccess                          []string
	HookTimeout                                   time.Duration
}

// Drill holds drill's options.
type Drill struct {
	PGBin, ScratchDir string
	Timeout           time.Duration
}

// Keep holds the retention rules (0: rule not given).
type Keep struct {
	Last                           int
	Within                         time.Duration
	Daily, Weekly, Monthly, Yearly int
}

// Verify holds verify's options. Subset is a percentage, meaningful only when the key
// read-data-subset was given (Origin tells).
type Verify struct {
	// Backup is the one backup to verify ("" every backup of the cluster).
	Backup             string
	All, WAL, ReadData bool
	Subset             float64
	Period             time.Duration
}

// Receive holds wal-receive's options.
type Receive struct {
	Slot                            string
	CreateSlot, Synchronous         bool
	ApplicationName                 string
	PartialInterval, StatusInterval time.Duration
	MaxSpool                        int64
	FlushOnly                       bool
}

// Origin is the layer a value came from, in increasing precedence.
type Origin int

const (
	FromDefault Origin = iota
	FromTopLevel
	FromClusterTable
	FromEnv
	FromFlag
)

// layers are the origins above the default, strongest first.
var layers = []Origin{FromFlag, FromEnv, FromClusterTable, FromTopLevel}

func (o Origin) String() string {
	return [...]string{"default", "config file (top level)", "config file ([cluster.NAME])", "environment", "command line"}[o]
}

// setting is what set a key: the layer, and the texts as given there.
type setting struct {
	origin Origin
	texts  []string
}

// Origin tells where the key named name got its value.
func (o *Options) Origin(name string) Origin { return o.set[name].origin }

// Text is the key's value as it was given (the last one of a list), for a
// command line that must carry it elsewhere.
func (o *Options) Text(name string) string {
	t := o.set[name].texts
	if len(t) == 0 {
		return ""
	}
	return t[len(t)-1]
}

// Input is what Resolve layers over the defaults.
type Input struct {
	// Command is the running command: only the keys it takes are resolved
	// (the others keep their defaults). "" resolves every key.
	Command string
	// Flags are the texts given on the command line, by key name (not flag
	// name): several for a repeated list flag. A daemon resolving each cluster
	// of its file gives {"cluster": {NAME}}.
	Flags map[string][]string
	// Env looks up an environment variable (os.LookupEnv); nil reads none.
	Env func(string) (string, bool)
	// File is the config file; nil reads the one Options.Config names, or
	// DefaultFile when it exists.
	File *File
}

// Resolve layers flags, environment, file and defaults into Options. It reports
// every bad value it finds, not only the first.
func Resolve(in Input) (*Options, error) {
	r := &resolver{in: in, o: &Options{set: map[string]setting{}}}
	for _, k := range registry {
		if k.Default == "" {
			continue // the zero value
		}
		if err := r.apply(k, value{texts: []string{k.Default}}); err != nil {
			return nil, err
		}
	}
	// The file depends on config, and the table to read on cluster.
	if err := r.resolve(byName["config"]); err != nil {
		return nil, err
	}
	r.file = in.File
	if r.file == nil {
		var err error
		if r.file, err = ReadFile(r.o.Config); err != nil {
			return nil, err
		}
	}
	if err := r.resolve(byName["cluster"]); err != nil {
		return nil, err
	}
	errs := []error{r.passphrase()}
	for _, k := range registry {
		if k.Kind != Passphrase && k.Name != "config" && k.Name != "cluster" && k.TakenBy(in.Command) {
			errs = append(errs, r.resolve(k))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r.o, nil
}

type resolver struct {
	in   Input
	file *File
	o    *Options
}

// value is a key's texts in one layer.
type value struct {
	texts  []string
	origin Origin
}

// at returns the key's value in one layer, if that layer sets it.
func (r *resolver) at(k *Key, from Origin) (value, bool, error) {
	v := value{origin: from}
	switch from {
	case FromFlag:
		if !k.in(FlagLayer) {
			return v, false, nil
		}
		t, ok := r.in.Flags[k.Name]
		if !ok {
			return v, false, nil
		}
		v.texts = t
	case FromEnv:
		if !k.in(EnvLayer) || r.in.Env == nil {
			return v, false, nil
		}
		s, ok := r.in.Env(k.Env())
		if !ok {
			return v, false, nil
		}
		v.texts = []string{s}
		if k.Kind == List {
			v.texts = splitCommas(s)
		}
	case FromClusterTable, FromTopLevel:
		if !k.in(FileLayer) || (from == FromClusterTable && k.TopLevelOnly) {
			return v, false, nil
		}
		cluster := ""
		if from == FromClusterTable {
			cluster = r.o.Cluster
		}
		t, ok, err := r.file.texts(cluster, k)
		if !ok || err != nil {
			return v, false, err
		}
		v.texts = t
	}
	if k.SplitCommas {
		var t []string
		for _, s := range v.texts {
			t = append(t, splitCommas(s)...)
		}
		v.texts = t
	}
	if k.emptyUnset && strings.Join(v.texts, "") == "" {
		return v, false, nil
	}
	return v, true, nil
}

// resolve sets the key from the strongest layer that sets it.
func (r *resolver) resolve(k *Key) error {
	for _, from := range layers {
		v, ok, err := r.at(k, from)
		if err != nil {
			return err
		}
		if ok {
			return r.apply(k, v)
		}
	}
	return nil
}

// passphrase resolves the passphrase keys together: the first layer that names
// any source decides. PGWARD_PASSPHRASE is a source only in the environment
// layer; a file or command is kept even when PGWARD_PASSPHRASE wins over it,
// because a restore_command, run without this environment, needs it.
func (r *resolver) passphrase() error {
	value, file, command := byName["passphrase"], byName["passphrase-file"], byName["passphrase-command"]
	decided := false
	for _, from := range layers {
		pv, okV, err1 := r.at(value, from)
		fv, okF, err2 := r.at(file, from)
		cv, okC, err3 := r.at(command, from)
		if err := errors.Join(err1, err2, err3); err != nil {
			return err
		}
		if okV && !decided {
			if err := r.apply(value, pv); err != nil {
				return err
			}
		}
		switch {
		case okF:
			return r.apply(file, fv)
		case okC:
			return r.apply(command, cv)
		}
		decided = decided || okV
	}
	return nil
}

// apply parses and checks the texts and sets the key's field.
func (r *resolver) apply(k *Key, v value) error {
	var parsed any
	switch k.Kind {
	case List:
		parsed = v.texts
	default:
		if len(v.texts) > 1 {
			return r.refuse(k, v, fmt.Sprintf("%q", v.texts), errors.New("give one value, not a list"))
		}
		text := ""
		if len(v.texts) == 1 {
			text = v.texts[0]
		}
		p, err := parse(k.Kind, text)
		if err != nil {
			return r.refuse(k, v, strconv.Quote(text), err)
		}
		parsed = p
	}
	if k.check != nil && v.origin != FromDefault {
		if err := k.check(parsed); err != nil {
			return r.refuse(k, v, show(k, v.texts[0]), err)
		}
	}
	switch f := k.field(r.o).(type) {
	case *string:
		*f = parsed.(string)
	case *[]string:
		*f = parsed.([]string)
	case *bool:
		*f = parsed.(bool)
	case *int:
		*f = parsed.(int)
	case *int64:
		*f = parsed.(int64)
	case *time.Duration:
		*f = parsed.(time.Duration)
	case *compress.Codec:
		*f = parsed.(compress.Codec)
	case *float64:
		*f = parsed.(float64)
	default:
		panic(fmt.Sprintf("config: key %s: field of type %T", k.Name, f))
	}
	r.o.set[k.Name] = setting{origin: v.origin, texts: v.texts}
	return nil
}

// parse reads one text of a kind.
func parse(kind Kind, s string) (any, error) {
	switch kind {
	case String, Passphrase:
		return s, nil
	case Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, errors.New("use true or false")
		}
		return b, nil
	case Int:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return nil, errors.New("give a whole number")
		}
		return n, nil
	case Duration:
		d, err := parseDuration(strings.TrimSpace(s))
		if err != nil {
			return nil, errors.New("give a duration such as 10s, 5m, 1h30m or 30d")
		}
		return d, nil
	case Size:
		n, err := humanize.ParseBytes(s)
		if err != nil || n > math.MaxInt64 {
			return nil, errors.New("give a size such as 8GiB, 500MB or 0")
		}
		return int64(n), nil
	case Codec:
		return compress.Parse(s)
	case Percent:
		return parsePercent(s)
	}
	panic(fmt.Sprintf("config: cannot parse kind %s", kind))
}

// show is a value as messages quote it: strings quoted, numbers with their unit.
func show(k *Key, text string) string {
	switch k.Kind {
	case Int, Bool, Duration:
		if k.Unit != "" {
			return text + " " + k.Unit
		}
		return text
	}
	return strconv.Quote(text)
}

// refuse says which value is wrong, named as the user gave it (--jobs,
// PGWARD_JOBS, or jobs with the file's line and table), and why.
func (r *resolver) refuse(k *Key, v value, shown string, why error) error {
	switch v.origin {
	case FromFlag:
		return fmt.Errorf("--%s %s: %w", k.Flag(), shown, why)
	case FromEnv:
		return fmt.Errorf("environment %s=%s: %w", k.Env(), shown, why)
	case FromClusterTable, FromTopLevel:
		cluster := ""
		if v.origin == FromClusterTable {
			cluster = r.o.Cluster
		}
		return fmt.Errorf("%s: %s = %s: %w", r.file.where(cluster, k.FileKey()), k.FileKey(), shown, why)
	}
	return fmt.Errorf("config: default %s of %s: %w", shown, k.Name, why)
}

func splitCommas(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parsePercent reads a share from 0 to 100, with or without a % sign.
func parsePercent(s string) (float64, error) {
	p, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || math.IsNaN(p) || p < 0 || p > 100 {
		return 0, errors.New("give a percentage from 0% to 100%, e.g. 5%")
	}
	return p, nil
}

// parseDuration reads Go's durations with days and weeks in front ("2w", "30d", "1d12h"):
// retention windows are counted in days.
func parseDuration(s string) (time.Duration, error) {
	var d time.Duration
	rest := s
	for _, u := range []struct {
		suffix byte
		unit   time.Duration
	}{{'w', 7 * 24 * time.Hour}, {'d', 24 * time.Hour}} {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i > 0 && i < len(rest) && rest[i] == u.suffix {
			n, err := strconv.Atoi(rest[:i])
			if err != nil || n > 100_000 {
				return 0, errors.New("bad duration")
			}
			d += time.Duration(n) * u.unit
			rest = rest[i+1:]
		}
	}
	if rest == "" {
		if rest == s {
			return 0, errors.New("empty duration")
		}
		return d, nil
	}
	r, err := time.ParseDuration(rest)
	if err != nil {
		return 0, err
	}
	return d + r, nil
}
