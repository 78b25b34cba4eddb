package repo

import (
	"context"
)

// Upgrade raises the repository in st from format 1 to format 2
// (docs/repository-format.md, "Format versions and upgrade"): it replaces the
// config with the same config with format 2 and the pack and delta settings
// (rewriteConfig: config-2 is written, then config deleted). Every key, and so
// every object, stays valid. A crash between the two steps leaves both objects,
// which this release reads as format 2 and an older one as format 1; after the
// delete an older pgward finds no repository rather than misreading format-2
// backups. Upgrading a format-2 repository changes nothing.
func Upgrade(ctx context.Context, st Storage, passphrase func() ([]byte, error)) (from, to int, err error) {
	r, err := Open(ctx, st, passphrase) // proves the passphrase before anything changes
	if err != nil {
		return 0, 0, err
	}
	from = r.Config().Format
	if from >= FormatVersion {
		return from, from, nil
	}
	l, err := r.lockConfig(ctx, "upgrade")
	if err != nil {
		return from, from, err
	}
	defer l.Unlock(ctx)
	cfg, err := rewriteConfig(ctx, st, func(c Config) (Config, error) {
		c.Format = FormatVersion
		c.setFormat2Defaults()
		return c, nil
	})
	if err != nil {
		return from, from, err
	}
	return from, cfg.Format, nil
}
