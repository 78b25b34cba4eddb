package pgserver

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
)

// Database is one row of pg_database.
type Database struct {
	OID  uint32
	Name string
}

// Databases lists the cluster's databases over an ordinary (not replication)
// connection made from the same connection string: a replication connection
// cannot run queries. pg_database is shared by all databases, so any one will
// do; a string that names none connects to "postgres" rather than to the
// database named like the role, which a backup role seldom has.
func Databases(ctx context.Context, conn string) ([]Database, error) {
	cfg, err := pgconn.ParseConfig(conn)
	if err != nil {
		return nil, fmt.Errorf("connection string: %w", err)
	}
	delete(cfg.RuntimeParams, "replication")
	if cfg.Database == "" {
		cfg.Database = "postgres"
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "pgward"
	}
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, ExplainConnectError(cfg, err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	res, err := c.Exec(ctx, "SELECT oid::text, datname FROM pg_catalog.pg_database ORDER BY oid").ReadAll()
	if err != nil {
		return nil, fmt.Errorf("listing databases: %w", err)
	}
	if len(res) != 1 {
		return nil, fmt.Errorf("listing databases: unexpected result")
	}
	var out []Database
	for _, row := range res[0].Rows {
		oid, err := strconv.ParseUint(string(row[0]), 10, 32)
		if err != nil || len(row) != 2 {
			return nil, fmt.Errorf("listing databases: unexpected row %q", row)
		}
		out = append(out, Database{OID: uint32(oid), Name: string(row[1])})
	}
	return out, nil
}
