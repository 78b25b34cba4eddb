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

// Catalog is an ordinary (not replication) connection to the cluster, for the
// queries a replication connection cannot run.
type Catalog struct {
	conn *pgconn.PgConn
}

// OpenCatalog connects from the replication connection string conn: pg_database
// is shared by all databases, so any one will do, and a string that names none
// connects to "postgres" rather than to the database named like the role, which
// a backup role seldom has.
func OpenCatalog(ctx context.Context, conn string) (*Catalog, error) {
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
	return &Catalog{conn: c}, nil
}

// Close ends the connection.
func (c *Catalog) Close(ctx context.Context) { c.conn.Close(context.WithoutCancel(ctx)) }

// Databases lists the cluster's databases over a connection of its own.
func Databases(ctx context.Context, conn string) ([]Database, error) {
	c, err := OpenCatalog(ctx, conn)
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	return c.Databases(ctx)
}

// Databases lists the cluster's databases.
func (c *Catalog) Databases(ctx context.Context) ([]Database, error) {
	res, err := c.conn.Exec(ctx, "SELECT oid::text, datname FROM pg_catalog.pg_database ORDER BY oid").ReadAll()
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
