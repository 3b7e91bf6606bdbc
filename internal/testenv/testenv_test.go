package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/testenv"
)

func TestPostgresGivesFreshDatabaseAndDropsIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var first string
	t.Run("use", func(t *testing.T) {
		first = testenv.Postgres(t)
		second := testenv.Postgres(t)
		require.NotEqual(t, first, second)

		conn, err := pgx.Connect(ctx, first)
		require.NoError(t, err)
		defer conn.Close(ctx)
		var n int
		require.NoError(t, conn.QueryRow(ctx,
			`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&n))
		require.Zero(t, n, "database is not empty")
		_, err = conn.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY)`)
		require.NoError(t, err)
		// Left open on purpose: the drop must force it closed.
	})

	// The subtest's cleanup has run: its database must be gone.
	u, err := url.Parse(first)
	require.NoError(t, err)
	name := strings.TrimPrefix(u.Path, "/")
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	require.NoError(t, err)
	defer conn.Close(ctx)
	var exists bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists))
	require.False(t, exists, "database %s was not dropped", name)
}

func TestS3GivesFreshBuckets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := testenv.S3(t), testenv.S3(t)
	require.Equal(t, a.Endpoint, b.Endpoint, "one shared server per test binary")
	require.NotEqual(t, a.Bucket, b.Bucket)

	sa, err := blob.NewS3(ctx, a)
	require.NoError(t, err)
	sb, err := blob.NewS3(ctx, b)
	require.NoError(t, err)
	_, err = sa.Put(ctx, "k", strings.NewReader("in a"), -1)
	require.NoError(t, err)
	list, err := sb.List(ctx, "")
	require.NoError(t, err)
	require.Empty(t, list, "buckets are not isolated")
}

func TestS3ServerStopStartKeepsData(t *testing.T) {
	t.Parallel()
	srv := testenv.StartS3Server(t)
	cfg := srv.Config()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := blob.NewS3(ctx, cfg)
	require.NoError(t, err)
	_, err = s.Put(ctx, "kept", strings.NewReader("survives"), -1)
	require.NoError(t, err)

	require.NoError(t, srv.Stop())
	require.NoError(t, srv.Stop(), "Stop twice")
	_, err = s.Stat(ctx, "kept")
	require.Error(t, err, "server still answering after Stop")

	require.NoError(t, srv.Start())
	require.Equal(t, cfg.Endpoint, srv.Config().Endpoint, "port changed across restart")
	info, err := s.Stat(ctx, "kept")
	require.NoError(t, err)
	require.Equal(t, int64(len("survives")), info.Size)
}

// The two tests below change the environment, so they cannot be parallel.

func TestS3FailsClearlyWithoutBinary(t *testing.T) {
	t.Setenv(testenv.VersityGWEnv, "/nonexistent/versitygw")
	msg := fatalMessage(t, func(tb testing.TB) { testenv.StartS3Server(tb) })
	require.Contains(t, msg, "/nonexistent/versitygw")
	require.Contains(t, msg, testenv.VersityGWEnv)
}

func TestPostgresFailsClearlyWhenUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	t.Setenv(testenv.PostgresEnv, "postgres://postgres@"+addr+"/test?sslmode=disable&connect_timeout=5")
	msg := fatalMessage(t, func(tb testing.TB) { testenv.Postgres(tb) })
	require.Contains(t, msg, "cannot reach PostgreSQL")
	require.Contains(t, msg, "scripts/test.sh")
}

// fatalMessage runs f with a testing.TB whose Fatalf is captured instead of
// failing t, and returns the message.
func fatalMessage(t *testing.T, f func(testing.TB)) string {
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != errFatal {
				panic(r)
			}
		}()
		f(ft)
	}()
	require.NotEmpty(t, ft.msg, "Fatalf was not called")
	return ft.msg
}

var errFatal = errors.New("fatal")

type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(errFatal) // stands in for runtime.Goexit, which would end t itself
}
