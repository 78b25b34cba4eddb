package repo

// Replacing the config (docs/repository-format.md, "Replacing the config").
//
// Objects are written once and S3 has no atomic rename, so the config is
// replaced by moving it between its two names, config and config-2, which every
// reader since format 2 looks up in that order (readConfig):
//   - from config: write config-2 (from then on readers get the new config),
//     then delete config;
//   - from config-2: write config, then delete config-2 (from then on readers
//     get the new config).
//
// At every moment readers get one complete config, the old one or the new one.
// A crash between the two steps leaves both objects; tidyConfig settles that
// before the next replacement by deleting config, the one nobody reads. Releases
// before format 2 read config only, so a format-1 config is moved back to config
// at the end (two moves), and tidyConfig moves one it finds under config-2 back.
// Replacements are serialized by the config lock (lockConfig); a process that
// opened the repository before a replacement keeps its master key, which no
// replacement changes.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// configLock is the lock directory that serializes changes to the config and
// the keys: locks/.config/ (a cluster name never starts with a dot).
const configLock = ".config"

// lockConfig takes the lock that serializes changes to the config and the keys.
func (r *Repo) lockConfig(ctx context.Context, purpose string) (*Lock, error) {
	l, err := r.Lock(ctx, configLock, purpose)
	if errors.Is(err, ErrLocked) {
		return nil, fmt.Errorf("%s on %s: another key command or upgrade is running there (%w)", purpose, r.st, err)
	}
	return l, err
}

// tidyConfig leaves exactly one config object, under the name a reader of its
// format looks for first, without changing which config readers get.
func tidyConfig(ctx context.Context, st Storage) error {
	has := map[string]bool{}
	for _, name := range []string{upgradedConfigName, configName} {
		_, err := st.Stat(ctx, name)
		switch {
		case err == nil:
			has[name] = true
		case !errors.Is(err, ErrNotFound):
			return fmt.Errorf("looking at the config of %s: %w", st, err)
		}
	}
	if !has[upgradedConfigName] {
		return nil
	}
	if has[configName] {
		// Readers get config-2: config is what an interrupted replacement or
		// upgrade left behind.
		if err := st.Delete(ctx, configName); err != nil {
			return fmt.Errorf("deleting the config that %s of %s replaced: %w", upgradedConfigName, st, err)
		}
	}
	_, raw, err := readConfig(ctx, st)
	if err != nil {
		return err
	}
	var v struct{ Format int }
	if json.Unmarshal(raw, &v) == nil && v.Format == 1 {
		return moveConfig(ctx, st, upgradedConfigName, raw)
	}
	return nil
}

// moveConfig makes raw the config, read until now under from.
func moveConfig(ctx context.Context, st Storage, from string, raw []byte) error {
	to := configName
	if from == configName {
		to = upgradedConfigName
	}
	if err := st.Put(ctx, to, bytes.NewReader(raw), int64(len(raw))); err != nil {
		if errors.Is(err, ErrExists) {
			return fmt.Errorf("replacing the config of %s: %s appeared meanwhile, so another process changed the config; run the command again", st, to)
		}
		return fmt.Errorf("replacing the config of %s: writing %s: %w", st, to, err)
	}
	if err := st.Delete(ctx, from); err != nil {
		return fmt.Errorf("replacing the config of %s: %s is written but %s could not be deleted (the next key command or upgrade deletes it): %w", st, to, from, err)
	}
	return nil
}

// rewriteConfig replaces the config with what edit makes of it (the current
// config, decoded strictly) and returns the new one. An edit that changes
// nothing writes nothing. The caller holds the config lock.
func rewriteConfig(ctx context.Context, st Storage, edit func(Config) (Config, error)) (Config, error) {
	if err := tidyConfig(ctx, st); err != nil {
		return Config{}, err
	}
	name, raw, err := readConfig(ctx, st)
	if err != nil {
		return Config{}, err
	}
	if _, err := parseConfig(st, raw); err != nil {
		return Config{}, err
	}
	// Strictly: a field this pgward does not know would be lost in the rewrite.
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("the config of %s has settings this pgward does not know (%v); change it with the pgward release that wrote them", st, err)
	}
	next, err := edit(cfg)
	if err != nil {
		return Config{}, err
	}
	if next.KeyCheck, err = next.keyCheck(); err != nil {
		return Config{}, err
	}
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return Config{}, err
	}
	b = append(b, '\n')
	if bytes.Equal(b, raw) {
		return next, nil
	}
	if err := moveConfig(ctx, st, name, b); err != nil {
		return Config{}, err
	}
	if name == configName && next.Format == 1 {
		if err := moveConfig(ctx, st, upgradedConfigName, b); err != nil {
			return Config{}, err
		}
	}
	if _, got, err := readConfig(ctx, st); err != nil {
		return Config{}, err
	} else if !bytes.Equal(got, b) {
		return Config{}, fmt.Errorf("replacing the config of %s: another process changed it meanwhile; check it with 'pgward key list' and run the command again", st)
	}
	return next, nil
}
