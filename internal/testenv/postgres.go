package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PostgresEnv names the environment variable holding the URL of the
// PostgreSQL server tests use; DefaultPostgresURL applies when it is unset.
const (
	PostgresEnv        = "GREFFIER_TEST_POSTGRES"
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
)

// Postgres creates an empty database for this test on the server at
// $GREFFIER_TEST_POSTGRES and returns its URL. The database is dropped
// (WITH (FORCE), so open pools do not block it) when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		base = DefaultPostgresURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("testenv: %s=%q is not a postgres:// URL (e.g. %s)", PostgresEnv, base, DefaultPostgresURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := connectAdmin(ctx, u)
	if err != nil {
		t.Fatalf("testenv: cannot reach PostgreSQL at %s: %v\n"+
			"Start it with scripts/test.sh, or by hand: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"+
			"or point %s at a server where this user may CREATE DATABASE.",
			u.Redacted(), err, PostgresEnv)
	}
	defer conn.Close(context.Background())

	name := "greffier_test_" + randHex(8)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database %s on %s: %v", name, u.Redacted(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := connectAdmin(ctx, u)
		if err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	dbURL := *u
	dbURL.Path = "/" + name
	dbURL.RawPath = ""
	return dbURL.String()
}

// connectAdmin connects to the configured database, or to "postgres" when
// the configured one does not exist: only the server matters here.
func connectAdmin(ctx context.Context, u *url.URL) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, u.String())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name
		alt := *u
		alt.Path = "/postgres"
		conn, err = pgx.Connect(ctx, alt.String())
	}
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return conn, nil
}
