package meeting

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/testenv"
	"github.com/greffier/greffier/jobs"
	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

var dialects = []store.Dialect{store.SQLite, store.Postgres}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openStore opens a fresh database of dialect d.
func openStore(t testing.TB, d store.Dialect) *store.Store {
	t.Helper()
	cfg := store.Config{SQLitePath: filepath.Join(t.TempDir(), "g.db")}
	if d == store.Postgres {
		cfg = store.Config{PostgresURL: testenv.Postgres(t)}
	}
	st, err := store.Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

// startPipeline runs a job pipeline over st, against a transcription double.
func startPipeline(t *testing.T, st *store.Store) *jobs.Pipeline {
	t.Helper()
	ctx := context.Background()
	blobs, err := blob.NewDisk(t.TempDir())
	require.NoError(t, err)
	double := transcribetest.NewServer(transcribetest.Options{})
	t.Cleanup(double.Close)
	tr, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: double.BaseURL()})
	require.NoError(t, err)
	p, err := jobs.New(ctx, jobs.Config{PollInterval: 50 * time.Millisecond, RetryBase: 50 * time.Millisecond},
		jobs.Deps{Store: st, Blobs: blobs, Transcriber: tr, Logger: discard()})
	require.NoError(t, err)
	require.NoError(t, p.Start(ctx))
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, p.Stop(sctx))
	})
	return p
}

// liveMeeting creates a meeting alice has joined.
func liveMeeting(t testing.TB, st *store.Store) store.Meeting {
	t.Helper()
	ctx := context.Background()
	m, err := st.CreateMeeting(ctx, "Conseil", "fr")
	require.NoError(t, err)
	_, err = st.Join(ctx, m.ID, "alice", "Alice Martin")
	require.NoError(t, err)
	m, err = st.Meeting(ctx, m.ID)
	require.NoError(t, err)
	require.Equal(t, store.MeetingLive, m.State)
	return m
}
