package pgtest

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TableSum is the content fingerprint of one table.
type TableSum struct {
	Rows     int64
	MD5      string // md5 of the rows' text forms, sorted (bytewise) and joined by "\n"; "" when empty
	Unlogged bool   // a restored cluster has unlogged tables empty: the caller decides what to compare
}

// catalogQuery lists the tables whose data a backup must carry: ordinary tables
// (partitions included, partitioned parents excluded so rows count once) and populated
// materialized views, outside the system schemas, not temporary.
const catalogQuery = `
SELECT n.nspname, c.relname, c.relpersistence = 'u',
       format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (c.relkind = 'r' OR (c.relkind = 'm' AND c.relispopulated))
  AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
ORDER BY 1, 2`

// Checksums fingerprints every table of every connectable non-template database,
// keyed "db.schema.table". Each database is read in one repeatable-read snapshot.
//
// The digest equals md5(string_agg(r::text, E'\n' ORDER BY r::text COLLATE "C")) computed
// in SQL, but rows are streamed in order and hashed here: string_agg would build the
// whole table as one value in server memory and fail past 1 GB.
func Checksums(t testing.TB, c *Cluster) map[string]TableSum {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	sums, err := c.checksums(ctx)
	if err != nil {
		t.Fatalf("pgtest: checksums of PostgreSQL %d: %v", c.Major, err)
	}
	return sums
}

func (c *Cluster) checksums(ctx context.Context) (map[string]TableSum, error) {
	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		return nil, err
	}
	rows, _ := conn.Query(ctx, "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY 1")
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	conn.Close(context.Background())
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	sums := map[string]TableSum{}
	for _, db := range dbs {
		if err := c.databaseChecksums(ctx, db, sums); err != nil {
			return nil, fmt.Errorf("database %s: %w", db, err)
		}
	}
	return sums, nil
}

func (c *Cluster) databaseChecksums(ctx context.Context, db string, sums map[string]TableSum) error {
	conn, err := c.connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background())

	type table struct {
		schema, name, qualified string
		unlogged                bool
	}
	var tables []table
	rows, _ := tx.Query(ctx, catalogQuery)
	var tb table
	if _, err := pgx.ForEachRow(rows, []any{&tb.schema, &tb.name, &tb.unlogged, &tb.qualified}, func() error {
		tables = append(tables, tb)
		return nil
	}); err != nil {
		return fmt.Errorf("list tables: %w", err)
	}

	for _, tb := range tables {
		// The alias is unusual so that it cannot be shadowed by a column of that name
		// (a bare name resolves to a column before a whole-row reference).
		sql := fmt.Sprintf(`SELECT pgtest_row_::text COLLATE "C" AS v FROM %s pgtest_row_ ORDER BY v`, tb.qualified)
		sum, err := hashRows(ctx, conn.PgConn(), sql)
		if err != nil {
			return fmt.Errorf("table %s: %w", tb.qualified, err)
		}
		sum.Unlogged = tb.unlogged
		sums[db+"."+tb.schema+"."+tb.name] = sum
	}
	return nil
}

// hashRows streams a one-column text result and hashes it the way string_agg with
// "\n" then md5 would.
func hashRows(ctx context.Context, conn *pgconn.PgConn, sql string) (TableSum, error) {
	rr := conn.ExecParams(ctx, sql, nil, nil, nil, []int16{0})
	var (
		h hash.Hash = md5.New()
		n int64
	)
	for rr.NextRow() {
		if n > 0 {
			h.Write([]byte{'\n'})
		}
		h.Write(rr.Values()[0])
		n++
	}
	if _, err := rr.Close(); err != nil {
		return TableSum{}, err
	}
	sum := TableSum{Rows: n}
	if n > 0 {
		sum.MD5 = hex.EncodeToString(h.Sum(nil))
	}
	return sum, nil
}
