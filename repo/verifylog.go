package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// What verify keeps in the repository (docs/repository-format.md, "Verify ledger"):
//
//	verify/ledger/<UTC time>-<12 hex random>   which objects were read whole and found sound, and when
//	verify/runs/<UTC time, µs>-<12 hex random> the result of one run; the newest KeepVerifyRuns are kept
//
// Objects are written once, so a run merges every ledger object into a new one and deletes
// the ones it merged; two runs at once each write their own and lose nothing.

const (
	verifyLedgerPrefix = "verify/ledger/"
	verifyRunsPrefix   = "verify/runs/"
	// KeepVerifyRuns is how many run results verify keeps.
	KeepVerifyRuns = 20
	// MaxRunProblems bounds the problems a run result records.
	MaxRunProblems = 100
	// LedgerFormat is the version of the ledger's layout.
	LedgerFormat = 1
)

// ledger is the content of a ledger object: object name → Unix time it was verified.
type ledger struct {
	Format  int              `json:"format"`
	Objects map[string]int64 `json:"objects"`
}

// LoadLedger reads every ledger object and merges them: an object's time is the latest any
// of them gives. It returns the names of the ledger objects it read, for DeleteLedger once
// the merged ledger is written. A ledger object that cannot be read is passed to bad and
// counted as read (its times are lost, so those objects are read again: a ledger is a
// schedule, not a proof). A ledger object of another format (a newer pgward's) is left alone.
func (r *Repo) LoadLedger(ctx context.Context, bad func(name string, err error)) (map[string]int64, []string, error) {
	names, err := r.listNames(ctx, verifyLedgerPrefix)
	if err != nil {
		return nil, nil, fmt.Errorf("listing the verify ledger in %s: %w", r.st, err)
	}
	merged := map[string]int64{}
	var read []string
	for _, name := range names {
		var l ledger
		if err := r.getJSON(ctx, name, &l); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // merged and deleted by a concurrent run meanwhile
			}
			bad(name, err)
			read = append(read, name)
			continue
		}
		if l.Format != LedgerFormat {
			continue // a newer pgward's: neither read nor deleted
		}
		read = append(read, name)
		for obj, t := range l.Objects {
			merged[obj] = max(merged[obj], t)
		}
	}
	return merged, read, nil
}

// PutLedger writes one ledger object holding objects.
func (r *Repo) PutLedger(ctx context.Context, objects map[string]int64) error {
	name := verifyLedgerPrefix + stampedName(time.Now())
	if _, err := r.putJSON(ctx, name, ledger{Format: LedgerFormat, Objects: objects}); err != nil {
		return fmt.Errorf("writing the verify ledger %s to %s: %w", name, r.st, err)
	}
	return nil
}

// DeleteLedger deletes ledger objects (those LoadLedger read, after PutLedger merged them).
func (r *Repo) DeleteLedger(ctx context.Context, names []string) error {
	for _, name := range names {
		if !strings.HasPrefix(name, verifyLedgerPrefix) {
			return fmt.Errorf("%s is not a ledger object", name)
		}
		if err := r.st.Delete(ctx, name); err != nil {
			return fmt.Errorf("deleting the merged verify ledger %s in %s: %w", name, r.st, err)
		}
	}
	return nil
}

// VerifyRun is the result of one verify run, as the repository keeps it.
type VerifyRun struct {
	Time            time.Time `json:"time"`
	DurationSeconds float64   `json:"duration_seconds"`
	OK              bool      `json:"ok"`
	// Scope says what was checked ("cluster main, every backup"); Mode how (structure,
	// read-data, read-data-subset).
	Scope       string `json:"scope"`
	Mode        string `json:"mode,omitempty"`
	ObjectsRead int    `json:"objects_read"`
	BytesRead   int64  `json:"bytes_read"`
	// ProblemCount counts every problem; Problems holds the first MaxRunProblems.
	ProblemCount int             `json:"problem_count"`
	Problems     []VerifyProblem `json:"problems"`
}

// VerifyProblem is one thing verify found wrong, named by the object it is about.
type VerifyProblem struct {
	// Object is the object's name in the repository (for a gap of WAL, its first missing
	// segment; Last its last).
	Object string `json:"object"`
	Last   string `json:"last,omitempty"`
	// Kind says what is wrong (docs/verify.md lists the kinds).
	Kind string `json:"kind"`
	// Chunk is the chunk a pack entry or a missing chunk is about.
	Chunk string `json:"chunk,omitempty"`
	// Backups are the backups that need the object, when any do.
	Backups []string `json:"backups"`
	Error   string   `json:"error"`
}

// PutVerifyRun records a run's result and deletes the oldest results beyond
// KeepVerifyRuns.
func (r *Repo) PutVerifyRun(ctx context.Context, run VerifyRun) error {
	if len(run.Problems) > MaxRunProblems {
		run.Problems = run.Problems[:MaxRunProblems]
	}
	name := verifyRunsPrefix + run.Time.UTC().Format("20060102T150405.000000Z") + "-" + randomHex()
	if _, err := r.putJSON(ctx, name, run); err != nil {
		return fmt.Errorf("recording the verify run in %s: %w", r.st, err)
	}
	names, err := r.listNames(ctx, verifyRunsPrefix)
	if err != nil {
		return fmt.Errorf("listing verify runs in %s: %w", r.st, err)
	}
	for len(names) > KeepVerifyRuns {
		if err := r.st.Delete(ctx, names[0]); err != nil {
			return fmt.Errorf("deleting an old verify run in %s: %w", r.st, err)
		}
		names = names[1:]
	}
	return nil
}

// LastVerifyRun returns the newest run result, or nil when verify never ran. A result that
// cannot be read is an error naming it.
func (r *Repo) LastVerifyRun(ctx context.Context) (*VerifyRun, error) {
	names, err := r.listNames(ctx, verifyRunsPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing verify runs in %s: %w", r.st, err)
	}
	for i := len(names) - 1; i >= 0; i-- {
		var run VerifyRun
		err := r.getJSON(ctx, names[i], &run)
		if errors.Is(err, ErrNotFound) {
			continue // pruned meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("reading verify run %s in %s: %w", names[i], r.st, err)
		}
		return &run, nil
	}
	return nil, nil
}

// listNames lists the objects directly under prefix, in name order.
func (r *Repo) listNames(ctx context.Context, prefix string) ([]string, error) {
	var names []string
	err := r.st.List(ctx, prefix, func(o ObjectInfo) error {
		if !strings.Contains(strings.TrimPrefix(o.Name, prefix), "/") {
			names = append(names, o.Name)
		}
		return nil
	})
	slices.Sort(names)
	return names, err
}

// stampedName is <UTC time>-<12 hex random>: names that sort by time.
func stampedName(t time.Time) string {
	return t.UTC().Format("20060102T150405Z") + "-" + randomHex()
}

func randomHex() string {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	return hex.EncodeToString(rnd[:])
}
