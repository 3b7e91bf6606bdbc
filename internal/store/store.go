// Package store keeps Greffier's records (meetings, participants, recorded
// tracks, speech segments and their transcripts, minutes versions) in SQLite
// or Postgres through one code path: database/sql, `$n` placeholders and
// upserts both dialects accept. It knows nothing of HTTP, media or River;
// callers that must enqueue work in the same transaction use InTx.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// Dialect names the database behind a Store.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Sentinel errors callers branch on.
var (
	ErrNotFound = errors.New("not found")
	// ErrMeetingClosed: the meeting has ended and takes no more media.
	ErrMeetingClosed = errors.New("meeting has ended")
)

// Config says which database to open.
type Config struct {
	// PostgresURL, when set, selects Postgres (pgx/v5). Empty selects SQLite.
	PostgresURL string
	// SQLitePath is the SQLite file, used when PostgresURL is empty.
	SQLitePath string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Store is the database. Its Queries run outside any transaction; InTx
// gives a Queries bound to one.
type Store struct {
	Queries
	db      *sql.DB
	dialect Dialect
	pool    *pgxpool.Pool // Postgres only: River's LISTEN connections
}

// Open connects, and migrates Greffier's schema.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	s := &Store{}
	switch {
	case cfg.PostgresURL != "":
		pool, err := pgxpool.New(ctx, cfg.PostgresURL)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		if err := pool.Ping(ctx); err != nil {
			pool.Close()
			return nil, fmt.Errorf("connect to postgres: %w", err)
		}
		s.pool, s.dialect = pool, Postgres
		s.db = stdlib.OpenDBFromPool(pool)
	case cfg.SQLitePath != "":
		if err := os.MkdirAll(filepath.Dir(cfg.SQLitePath), 0o750); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
		// One connection: SQLite allows one writer, and River's sqlite
		// driver asks for it. WAL keeps readers of the file (backups,
		// the sqlite3 shell) from blocking us.
		dsn := "file:" + cfg.SQLitePath + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
			"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", cfg.SQLitePath, err)
		}
		db.SetMaxOpenConns(1)
		s.db, s.dialect = db, SQLite
	default:
		return nil, errors.New("store: set PostgresURL or SQLitePath")
	}
	s.Queries = Queries{q: s.db, now: now}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.ensureSearchIndex(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.backfillSearchText(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// DB is the connection pool, for River's driver.
func (s *Store) DB() *sql.DB { return s.db }

// Dialect says which database this is.
func (s *Store) Dialect() Dialect { return s.dialect }

// PgxPool is the Postgres pool River listens on; nil for SQLite.
func (s *Store) PgxPool() *pgxpool.Pool { return s.pool }

// Close releases the database.
func (s *Store) Close() error {
	err := s.db.Close()
	if s.pool != nil {
		s.pool.Close()
	}
	return err
}

// InTx runs fn in one transaction, committed if fn returns nil. fn must use
// only tx and q: on SQLite the pool has one connection, so touching the
// Store itself inside fn would wait forever.
func (s *Store) InTx(ctx context.Context, fn func(tx *sql.Tx, q Queries) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx, Queries{q: tx, now: s.now}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Queries are the store's reads and writes, bound to the pool or to one
// transaction.
type Queries struct {
	q   querier
	now func() time.Time
}

// NewID returns a fresh id with a readable prefix ("mtg", "trk").
func NewID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return prefix + "_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

func toMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(ms sql.NullInt64) time.Time {
	if !ms.Valid || ms.Int64 == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms.Int64).UTC()
}

func nullMS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}
