package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Upgrade raises the repository in st from format 1 to format 2
// (docs/repository-format.md, "Format versions and upgrade"): it writes config-2, the
// same config with format 2 and the pack and delta settings, then deletes config.
// Every key, and so every object, stays valid. A crash between the two steps
// leaves both objects, which this release reads as format 2 and an older one as
// format 1; after the delete an older pgward finds no repository rather than
// misreading format-2 backups. Upgrading a format-2 repository changes nothing.
func Upgrade(ctx context.Context, st Storage, passphrase func() ([]byte, error)) (from, to int, err error) {
	r, err := Open(ctx, st, passphrase) // proves the passphrase before anything changes
	if err != nil {
		return 0, 0, err
	}
	cfg := r.Config()
	from = cfg.Format
	if from >= FormatVersion {
		return from, from, nil
	}
	cfg.Format = FormatVersion
	cfg.setFormat2Defaults()
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return from, from, err
	}
	b = append(b, '\n')
	if err := st.Put(ctx, upgradedConfigName, bytes.NewReader(b), int64(len(b))); err != nil && !errors.Is(err, ErrExists) {
		return from, from, fmt.Errorf("upgrading %s: writing %s: %w", st, upgradedConfigName, err)
	}
	if err := st.Delete(ctx, configName); err != nil {
		return from, FormatVersion, fmt.Errorf("upgrading %s: %s is written but the old config could not be deleted (older pgward versions still see format 1): %w", st, upgradedConfigName, err)
	}
	return from, FormatVersion, nil
}
