package drill

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/wal"
)

func parseLSN(s string) (uint64, error) { return wal.ParseLSN(s) }

// check reads the restored cluster: every database that allows connections answers, every
// table (heap, TOAST, materialized view) is read to its end by a sequential scan (with data
// checksums on, every page's checksum is verified on the way), and where the server has
// the amcheck extension, every B-tree index is checked and (PostgreSQL 14+) every heap.
func (s *server) check(ctx context.Context) (repo.DrillChecks, error) {
	var c repo.DrillChecks
	rows, err := s.conn.Query(ctx, "SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname")
	if err != nil {
		return c, err
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return c, err
	}
	var available int
	if err := s.conn.QueryRow(ctx, "SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck'").Scan(&available); err != nil {
		return c, err
	}
	c.Amcheck = available > 0
	for _, db := range dbs {
		if err := s.checkDatabase(ctx, db, &c); err != nil {
			return c, fmt.Errorf("database %s: %w", db, err)
		}
		c.Databases++
	}
	return c, nil
}

func (s *server) checkDatabase(ctx context.Context, db string, c *repo.DrillChecks) error {
	conn, err := s.connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	// Sequential scans only: an index-only scan would not read the heap.
	for _, set := range []string{"enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"} {
		if _, err := conn.Exec(ctx, "SET "+set+" = off"); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, "SET max_parallel_workers_per_gather = 0"); err != nil {
		return err
	}
	rows, err := conn.Query(ctx, `SELECT c.oid::regclass::text, c.relkind::text FROM pg_class c
		WHERE c.relkind IN ('r', 't', 'm') AND c.relpersistence = 'p' ORDER BY c.oid`)
	if err != nil {
		return err
	}
	type rel struct{ name, kind string }
	rels, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rel, error) {
		var x rel
		return x, r.Scan(&x.name, &x.kind)
	})
	if err != nil {
		return err
	}
	for _, r := range rels {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+r.name).Scan(&n); err != nil {
			if r.kind == "m" && strings.Contains(err.Error(), "has not been populated") {
				continue
			}
			return fmt.Errorf("reading %s: %w", r.name, err)
		}
		c.Tables++
		c.Rows += n
	}
	if c.Amcheck {
		return s.amcheck(ctx, conn, c)
	}
	return nil
}

// amcheck checks every B-tree index and, where verify_heapam exists, every table's heap
// and TOAST. The extension is created in the copy: it is thrown away.
func (s *server) amcheck(ctx context.Context, conn *pgx.Conn, c *repo.DrillChecks) error {
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS amcheck"); err != nil {
		return fmt.Errorf("creating amcheck: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relpersistence = 'p' AND i.indisvalid AND i.indisready ORDER BY c.oid`)
	if err != nil {
		return err
	}
	indexes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, ix := range indexes {
		if _, err := conn.Exec(ctx, "SELECT bt_index_check($1::regclass, true)", ix); err != nil {
			return fmt.Errorf("amcheck of index %s: %w", ix, err)
		}
		c.IndexesChecked++
	}
	var heapam int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_proc WHERE proname = 'verify_heapam'").Scan(&heapam); err != nil || heapam == 0 {
		return err
	}
	rows, err = conn.Query(ctx, `SELECT c.oid::regclass::text FROM pg_class c WHERE c.relkind IN ('r', 'm') AND c.relpersistence = 'p' ORDER BY c.oid`)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, t := range tables {
		var problems int64
		var first *string
		err := conn.QueryRow(ctx, "SELECT count(*), min(msg) FROM verify_heapam($1::regclass, check_toast => true)", t).Scan(&problems, &first)
		if err != nil {
			return fmt.Errorf("amcheck of table %s: %w", t, err)
		}
		if problems > 0 {
			return fmt.Errorf("amcheck found %d problems in table %s, the first: %s", problems, t, *first)
		}
		c.HeapsChecked++
	}
	return nil
}
