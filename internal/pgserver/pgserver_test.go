package pgserver

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{
		"15.18 (Debian 15.18-0+deb12u1)": {150018, 15},
		"18.4":                           {180004, 18},
		"17beta1":                        {170000, 17},
		"13.23":                          {130023, 13},
	} {
		if got, err := parseVersion(in); err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := parseVersion("devel"); err == nil {
		t.Error("a version without a number was accepted")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"16MB": 16 << 20, "1GB": 1 << 30, "8192": 8192, "64kB": 64 << 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
}

// Refusals are explained by SQLSTATE, whatever the server's lc_messages.
func TestExplainConnectError(t *testing.T) {
	cfg, _ := pgconn.ParseConfig("host=db1 port=5432 user=backup")
	cfg.RuntimeParams["replication"] = "true"
	for code, want := range map[string]string{
		"42501": "REPLICATION attribute",
		"53300": "max_wal_senders",
		"28000": "pg_hba.conf needs a 'replication' line",
		"28P01": "refuses the login",
	} {
		err := ExplainConnectError(cfg, &pgconn.PgError{Code: code, Message: "Zugriff verweigert"})
		if !strings.Contains(err.Error(), want) {
			t.Errorf("SQLSTATE %s: %v, want it to mention %q", code, err, want)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != code {
			t.Errorf("SQLSTATE %s: the server's error is not wrapped", code)
		}
	}
}
