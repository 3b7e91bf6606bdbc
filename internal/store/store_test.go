package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/testenv"
)

// eachDialect runs fn against a fresh SQLite file and a fresh Postgres
// database: the store is one code path, and both must behave alike.
func eachDialect(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	eachDialectClocked(t, func(t *testing.T, s *store.Store, _ *time.Time) { fn(t, s) })
}

// eachDialectClocked is eachDialect with the store reading the time from a
// clock of the test's own, which starts at 2026-03-01 09:00 UTC and moves
// only when the test moves it.
func eachDialectClocked(t *testing.T, fn func(t *testing.T, s *store.Store, clock *time.Time)) {
	t.Helper()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clock := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
			now := func() time.Time { return clock }
			cfg := store.Config{SQLitePath: filepath.Join(t.TempDir(), "g.db"), Now: now}
			if d == store.Postgres {
				cfg = store.Config{PostgresURL: testenv.Postgres(t), Now: now}
			}
			s, err := store.Open(ctx, cfg)
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			require.Equal(t, d, s.Dialect())
			fn(t, s, &clock)
		})
	}
}

func TestMeetingLifecycle(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		m, err := s.CreateMeeting(ctx, "Conseil", "fr")
		require.NoError(t, err)
		require.Equal(t, store.MeetingCreated, m.State)

		got, err := s.Meeting(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, m, got)

		_, err = s.Meeting(ctx, "mtg_nope")
		require.ErrorIs(t, err, store.ErrNotFound)

		zero, err := s.Join(ctx, m.ID, "alice", "Alice")
		require.NoError(t, err)
		require.False(t, zero.IsZero())
		zero2, err := s.Join(ctx, m.ID, "bob", "Bob")
		require.NoError(t, err)
		require.True(t, zero.Equal(zero2), "the first join sets the clock's zero")
		_, err = s.Join(ctx, m.ID, "alice", "Alice B.")
		require.NoError(t, err)

		ps, err := s.Participants(ctx, m.ID)
		require.NoError(t, err)
		require.Len(t, ps, 2)
		require.Equal(t, "Alice B.", ps[0].DisplayName, "a rejoin renames, it does not add")

		ended, err := s.Transition(ctx, m.ID, store.MeetingEnded, "")
		require.NoError(t, err)
		require.Equal(t, store.MeetingEnded, ended.State)
		require.False(t, ended.EndedAt.IsZero())

		_, err = s.Transition(ctx, m.ID, store.MeetingEnded, "")
		var te *store.TransitionError
		require.True(t, errors.As(err, &te))
		require.Equal(t, store.MeetingEnded, te.From)

		_, err = s.Join(ctx, m.ID, "carol", "Carol")
		require.ErrorIs(t, err, store.ErrMeetingClosed)
	})
}

func TestConcurrentFirstJoin(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		m, err := s.CreateMeeting(ctx, "", "")
		require.NoError(t, err)
		var wg sync.WaitGroup
		zeros := make([]time.Time, 8)
		started := make([]bool, len(zeros))
		for i := range zeros {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.InTx(ctx, func(_ *sql.Tx, q store.Queries) error {
					z, st, err := q.JoinStarting(ctx, m.ID, string(rune('a'+i)), "P")
					zeros[i], started[i] = z, st
					return err
				})
				require.NoError(t, err)
			}()
		}
		wg.Wait()
		starters := 0
		for i, z := range zeros {
			require.True(t, zeros[0].Equal(z))
			if started[i] {
				starters++
			}
		}
		require.Equal(t, 1, starters, "one join started the meeting")
		// Out of a transaction too (the SFU's joins), and never again.
		_, st, err := s.JoinStarting(ctx, m.ID, "z", "Z")
		require.NoError(t, err)
		require.False(t, st)
	})
}

// TestPendingOutlinesAreTheSegmentsStillToTranscribe: the pipeline's
// turn-taking reads only these, in meeting-clock order across tracks.
func TestPendingOutlinesAreTheSegmentsStillToTranscribe(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		m, err := s.CreateMeeting(ctx, "", "")
		require.NoError(t, err)
		alice := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "alice", SSRC: 1}
		bob := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "bob", SSRC: 2}
		require.NoError(t, s.CreateTrack(ctx, alice))
		require.NoError(t, s.CreateTrack(ctx, bob))
		for _, seg := range []store.SpeechSegment{
			{MeetingID: m.ID, TrackID: alice.ID, Identity: "alice", StartMS: 1000, EndMS: 2000, AudioKey: "a1"},
			{MeetingID: m.ID, TrackID: bob.ID, Identity: "bob", StartMS: 1500, EndMS: 2500, AudioKey: "b1"},
			{MeetingID: m.ID, TrackID: alice.ID, Identity: "alice", StartMS: 3000, EndMS: 4000, AudioKey: "a2"},
			{MeetingID: m.ID, TrackID: bob.ID, Identity: "bob", StartMS: 5000, EndMS: 6000, AudioKey: "b2"},
		} {
			require.NoError(t, s.UpsertSpeechSegment(ctx, seg))
		}
		require.NoError(t, s.SaveTranscript(ctx, alice.ID, 1000, "alpha", "en", []store.Word{{Text: "alpha", StartMS: 1000, EndMS: 1400}}))
		require.NoError(t, s.FailSegment(ctx, bob.ID, 5000, "backend said no"))

		pending, err := s.PendingOutlines(ctx, m.ID)
		require.NoError(t, err)
		var got []string
		for _, p := range pending {
			require.Equal(t, store.SegmentPending, p.Status)
			got = append(got, fmt.Sprintf("%s@%d", p.Identity, p.StartMS))
		}
		require.Equal(t, []string{"bob@1500", "alice@3000"}, got)
		all, err := s.SegmentOutlines(ctx, m.ID)
		require.NoError(t, err)
		require.Len(t, all, 4)
	})
}

func TestTracksSegmentsMinutes(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		m, err := s.CreateMeeting(ctx, "", "")
		require.NoError(t, err)
		_, err = s.Join(ctx, m.ID, "alice", "Alice")
		require.NoError(t, err)

		tr := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "alice", SSRC: 0xFFFFFFF0, StartMS: 1200}
		require.NoError(t, s.CreateTrack(ctx, tr))
		require.NoError(t, s.CreateTrack(ctx, tr), "creating twice is a no-op")
		p, err := s.Progress(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, 1, p.TracksRecording)
		require.False(t, p.Done())

		tr.State, tr.DurationMS, tr.BlobKey, tr.Size, tr.SHA256 = store.TrackStored, 9000, "k", 10, "ab"
		require.NoError(t, s.FinishTrack(ctx, tr))
		got, err := s.Track(ctx, tr.ID)
		require.NoError(t, err)
		require.Equal(t, uint32(0xFFFFFFF0), got.SSRC)
		require.Equal(t, store.TrackStored, got.State)
		require.Equal(t, int64(9000), got.DurationMS)

		seg := store.SpeechSegment{MeetingID: m.ID, TrackID: tr.ID, Identity: "alice", StartMS: 2200, EndMS: 3000,
			AudioStartMS: 2050, AudioKey: "a.wav"}
		require.NoError(t, s.UpsertSpeechSegment(ctx, seg))
		require.NoError(t, s.MarkSpeechDetected(ctx, tr.ID, ""))
		words := []store.Word{{Text: "alpha", StartMS: 2210, EndMS: 2500}}
		require.NoError(t, s.SaveTranscript(ctx, tr.ID, 2200, "alpha", "en", words))
		// A re-run of speech detection keeps the transcript.
		seg.EndMS = 3010
		require.NoError(t, s.UpsertSpeechSegment(ctx, seg))
		got2, err := s.SpeechSegment(ctx, tr.ID, 2200)
		require.NoError(t, err)
		require.Equal(t, store.SegmentTranscribed, got2.Status)
		require.Equal(t, words, got2.Words)
		require.Equal(t, int64(3010), got2.EndMS)
		outlines, err := s.SegmentOutlines(ctx, m.ID)
		require.NoError(t, err)
		require.Len(t, outlines, 1)
		want := got2
		want.AudioKey, want.Words, want.Language, want.Attempts, want.WaitingSince = "", nil, "", 0, time.Time{}
		require.Equal(t, want, outlines[0], "everything the speaker order reads, without the words")

		p, err = s.Progress(ctx, m.ID)
		require.NoError(t, err)
		require.True(t, p.Done())
		require.Equal(t, 1, p.SegmentsTranscribed)

		v1, created, err := s.SaveMinutes(ctx, m.ID, "d1", []byte(`{"a":1}`))
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, 1, v1.Version)
		again, created, err := s.SaveMinutes(ctx, m.ID, "d1", []byte(`{"a":1}`))
		require.NoError(t, err)
		require.False(t, created, "same content, same version")
		require.Equal(t, 1, again.Version)
		v2, _, err := s.SaveMinutes(ctx, m.ID, "d2", []byte(`{"a":2}`))
		require.NoError(t, err)
		require.Equal(t, 2, v2.Version)
		old, err := s.Minutes(ctx, m.ID, 1)
		require.NoError(t, err)
		require.JSONEq(t, `{"a":1}`, string(old.Body))

		require.NoError(t, s.FailSegment(ctx, tr.ID, 2200, "backend said no"))
		p, err = s.Progress(ctx, m.ID)
		require.NoError(t, err)
		require.Len(t, p.Failures, 1)
		require.Equal(t, "transcribe", p.Failures[0].Stage)

		// Detection over a whole recording replaces that track's segments.
		other := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "bob", SSRC: 7, StartMS: 0}
		require.NoError(t, s.CreateTrack(ctx, other))
		require.NoError(t, s.UpsertSpeechSegment(ctx, store.SpeechSegment{MeetingID: m.ID, TrackID: other.ID, Identity: "bob",
			StartMS: 100, EndMS: 900, AudioStartMS: 0, AudioKey: "b.ogg"}))
		require.NoError(t, s.DeleteSpeechSegment(ctx, tr.ID, 2200))
		_, err = s.SpeechSegment(ctx, tr.ID, 2200)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.SpeechSegment(ctx, other.ID, 100)
		require.NoError(t, err)
	})
}

func TestEvents(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		m, err := s.CreateMeeting(ctx, "", "")
		require.NoError(t, err)
		require.NoError(t, s.AddEvent(ctx, store.Event{MeetingID: m.ID, AtMS: 0, Kind: "joined", Identity: "alice"}))
		require.NoError(t, s.AddEvent(ctx, store.Event{MeetingID: m.ID, AtMS: 1200, Kind: "speaking_started", Identity: "alice"}))
		es, err := s.Events(ctx, m.ID)
		require.NoError(t, err)
		require.Len(t, es, 2)
		require.Equal(t, int64(1), es[0].Seq)
		require.Equal(t, int64(2), es[1].Seq)
		require.Equal(t, "speaking_started", es[1].Kind)
		require.Equal(t, int64(1200), es[1].AtMS)
	})
}

func TestSearch(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		m, err := s.CreateMeeting(ctx, "Budget", "")
		require.NoError(t, err)
		_, err = s.Join(ctx, m.ID, "alice", "Alice")
		require.NoError(t, err)
		tr := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "alice"}
		require.NoError(t, s.CreateTrack(ctx, tr))
		for i, text := range []string{"Le budget 2027 est voté", "100% d'accord_", "rien à voir"} {
			start := int64(i * 1000)
			require.NoError(t, s.UpsertSpeechSegment(ctx, store.SpeechSegment{MeetingID: m.ID, TrackID: tr.ID,
				Identity: "alice", StartMS: start, EndMS: start + 500, AudioKey: "k"}))
			require.NoError(t, s.SaveTranscript(ctx, tr.ID, start, text, "fr", nil))
		}
		page, err := s.Search(ctx, store.SearchQuery{Query: "BUDGET voté", Limit: 10})
		require.NoError(t, err)
		hits := page.Hits
		require.Len(t, hits, 1)
		require.Equal(t, "Budget", hits[0].Title)
		require.Equal(t, int64(0), hits[0].StartMS)
		page, err = s.Search(ctx, store.SearchQuery{Query: "100%", Limit: 10})
		require.NoError(t, err)
		require.Len(t, page.Hits, 1, "%% is punctuation, not a wildcard")
		_, err = s.Search(ctx, store.SearchQuery{Query: "_ %", Limit: 10})
		require.ErrorIs(t, err, store.ErrEmptyQuery, "punctuation alone is no word to find")
		page, err = s.Search(ctx, store.SearchQuery{Query: "budget", Identity: "bob", Limit: 10})
		require.NoError(t, err)
		require.Empty(t, page.Hits)
	})
}

// Search folds case and accents the same way on both databases: SQLite's
// LOWER folds ASCII only, so accented capitals were never found there.
// Transcripts saved before the folded copy existed are found too, once the
// store is opened again.
func TestFaultSearchFindsAccentedCapitalsOnBothDatabases(t *testing.T) {
	t.Parallel()
	texts := []string{"Élections municipales", "L'ÉCOLE est fermée", "Über alles", "Die Straße", "rien à voir"}
	queries := map[string]int{ // query: index of the one text it must find
		"élection": 0, "ELECTIONS": 0, "election": 0, "Élections municipales": 0,
		"école": 1, "ecole": 1, "ÉCOLE": 1, "fermee": 1, "über": 2, "uber": 2, "ÜBER": 2, "strasse": 3, "STRAßE": 3, "à voir": 4,
	}
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := store.Config{SQLitePath: filepath.Join(t.TempDir(), "g.db")}
			if d == store.Postgres {
				cfg = store.Config{PostgresURL: testenv.Postgres(t)}
			}
			s, err := store.Open(ctx, cfg)
			require.NoError(t, err)
			m, err := s.CreateMeeting(ctx, "Conseil", "fr")
			require.NoError(t, err)
			tr := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "alice"}
			require.NoError(t, s.CreateTrack(ctx, tr))
			for i, text := range texts {
				start := int64(i * 1000)
				require.NoError(t, s.UpsertSpeechSegment(ctx, store.SpeechSegment{MeetingID: m.ID, TrackID: tr.ID,
					Identity: "alice", StartMS: start, EndMS: start + 500, AudioKey: "k"}))
				require.NoError(t, s.SaveTranscript(ctx, tr.ID, start, text, "fr", nil))
			}

			check := func(when string) {
				for q, want := range queries {
					page, err := s.Search(ctx, store.SearchQuery{Query: q, Limit: 10})
					require.NoError(t, err)
					hits := page.Hits
					if assert.Len(t, hits, 1, "%s: %q", when, q) {
						assert.Equal(t, texts[want], hits[0].Text, "%s: %q", when, q)
					}
				}
			}
			check("saved now")
			// Rows from before the folded copy: the next start fills it.
			_, err = s.DB().ExecContext(ctx, `UPDATE speech_segments SET search_text = ''`)
			require.NoError(t, err)
			require.NoError(t, s.Close())
			s, err = store.Open(ctx, cfg)
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			check("backfilled")
			faulttest.Report(t, faulttest.FaultsInjected, float64(2*len(queries)))
		})
	}
}

func TestDamagedObjectsAreRememberedUntilCleared(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		m, err := s.CreateMeeting(ctx, "Conseil", "fr")
		require.NoError(t, err)
		other, err := s.CreateMeeting(ctx, "Autre", "fr")
		require.NoError(t, err)
		none, err := s.Damaged(ctx, m.ID)
		require.NoError(t, err)
		require.Empty(t, none)

		require.NoError(t, s.MarkDamaged(ctx, m.ID, "meetings/m/tracks/b.webm", "first finding"))
		require.NoError(t, s.MarkDamaged(ctx, m.ID, "meetings/m/tracks/a.webm", "hashes to x"))
		require.NoError(t, s.MarkDamaged(ctx, other.ID, "meetings/o/tracks/c.webm", "elsewhere"))
		first, err := s.Damaged(ctx, m.ID)
		require.NoError(t, err)
		require.NoError(t, s.MarkDamaged(ctx, m.ID, "meetings/m/tracks/b.webm", "found again"))
		got, err := s.Damaged(ctx, m.ID)
		require.NoError(t, err)
		require.Len(t, got, 2)
		require.Equal(t, "meetings/m/tracks/a.webm", got[0].BlobKey)
		require.Equal(t, "hashes to x", got[0].Detail)
		require.Equal(t, m.ID, got[0].MeetingID)
		require.Equal(t, "found again", got[1].Detail)
		require.Equal(t, first[1].FoundAt, got[1].FoundAt, "marking again keeps the first finding's time")
		require.False(t, got[1].FoundAt.IsZero())

		require.NoError(t, s.ClearDamage(ctx, "meetings/m/tracks/a.webm"))
		require.NoError(t, s.ClearDamage(ctx, "meetings/m/tracks/never.webm"))
		got, err = s.Damaged(ctx, m.ID)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, "meetings/m/tracks/b.webm", got[0].BlobKey)
	})
}

func TestJoinTokenRevocation(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		m, err := s.CreateMeeting(ctx, "", "")
		require.NoError(t, err)
		other, err := s.CreateMeeting(ctx, "", "")
		require.NoError(t, err)
		exp := time.Now().Add(time.Hour)
		for _, tk := range []store.JoinToken{{ID: "a1", Identity: "alice"}, {ID: "a2", Identity: "alice"}, {ID: "b1", Identity: "bob"}} {
			tk.MeetingID, tk.ExpiresAt = m.ID, exp
			require.NoError(t, s.AddJoinToken(ctx, tk))
		}
		revoked := func(identity, id string) bool {
			r, err := s.JoinTokenRevoked(ctx, m.ID, identity, id)
			require.NoError(t, err)
			return r
		}
		require.False(t, revoked("alice", "a1"))
		require.False(t, revoked("alice", ""))
		require.False(t, revoked("carol", "unknown"), "a token issued elsewhere is not refused here")

		_, err = s.RevokeJoinToken(ctx, other.ID, "b1")
		require.ErrorIs(t, err, store.ErrNotFound, "a token is revoked through its own meeting only")
		tk, err := s.RevokeJoinToken(ctx, m.ID, "b1")
		require.NoError(t, err)
		require.Equal(t, "bob", tk.Identity)
		require.False(t, tk.RevokedAt.IsZero())
		again, err := s.RevokeJoinToken(ctx, m.ID, "b1")
		require.NoError(t, err)
		require.True(t, tk.RevokedAt.Equal(again.RevokedAt), "revoking twice keeps the first time")
		require.True(t, revoked("bob", "b1"))
		require.False(t, revoked("alice", "a1"))

		_, err = s.RevokeIdentity(ctx, m.ID, "nobody")
		require.ErrorIs(t, err, store.ErrNotFound)
		n, err := s.RevokeIdentity(ctx, m.ID, "alice")
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.True(t, revoked("alice", "a1"))
		require.True(t, revoked("alice", "a2"))
		require.True(t, revoked("alice", ""), "a token without an id goes with its identity")
		require.NoError(t, s.AddJoinToken(ctx, store.JoinToken{ID: "a3", MeetingID: m.ID, Identity: "alice", ExpiresAt: exp}))
		require.False(t, revoked("alice", "a3"), "a token issued after the revocation is valid")

		// A participant whose tokens were never recorded (issued before
		// tokens were) can be revoked too.
		_, err = s.Join(ctx, m.ID, "dave", "Dave")
		require.NoError(t, err)
		n, err = s.RevokeIdentity(ctx, m.ID, "dave")
		require.NoError(t, err)
		require.Zero(t, n)
		require.True(t, revoked("dave", ""))

		live, err := s.MeetingsInState(ctx, store.MeetingLive)
		require.NoError(t, err)
		require.Len(t, live, 1)
		require.Equal(t, m.ID, live[0].ID)
	})
}

// TestTrackGaps: a gap recorded while a track records shows in the
// meeting's progress at once; finishing the track replaces its gaps with
// the ones the recorder knows by then.
func TestTrackGaps(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		m, err := s.CreateMeeting(ctx, "", "")
		require.NoError(t, err)
		tr := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "alice", StartMS: 1000}
		require.NoError(t, s.CreateTrack(ctx, tr))

		open := store.TrackGap{TrackID: tr.ID, MeetingID: m.ID, Identity: "alice", StartMS: 4000, EndMS: 4000, Reason: "disk full"}
		require.NoError(t, s.RecordGap(ctx, open))
		require.NoError(t, s.RecordGap(ctx, open), "recording the same gap twice is a no-op")
		require.Error(t, s.RecordGap(ctx, store.TrackGap{TrackID: tr.ID, MeetingID: m.ID, Identity: "alice",
			StartMS: 5, EndMS: 4, Reason: "x"}), "a gap must not end before it starts")
		p, err := s.Progress(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, []store.Failure{{Stage: "record", TrackID: tr.ID, Identity: "alice", StartMS: 4000, EndMS: 4000,
			Reason: "disk full"}}, p.Failures)

		tr.State, tr.DurationMS = store.TrackRecovered, 2900
		tr.Gaps = []store.TrackGap{{StartMS: 3900, EndMS: 9000, Reason: "disk full: not recorded"}}
		require.NoError(t, s.InTx(ctx, func(_ *sql.Tx, q store.Queries) error { return q.FinishTrack(ctx, tr) }))
		gaps, err := s.Gaps(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, []store.TrackGap{{TrackID: tr.ID, MeetingID: m.ID, Identity: "alice", StartMS: 3900, EndMS: 9000,
			Reason: "disk full: not recorded"}}, gaps)

		require.NoError(t, s.FailTrack(ctx, tr.ID, "sidecar damaged"))
		got, err := s.Track(ctx, tr.ID)
		require.NoError(t, err)
		require.Equal(t, store.TrackFailed, got.State)
		require.Equal(t, int64(1000), got.StartMS, "failing keeps what the row knew")
		require.Equal(t, int64(2900), got.DurationMS)
		require.ErrorIs(t, s.FailTrack(ctx, "trk_nope", "x"), store.ErrNotFound)
	})
}

// TestFaultRerunKeepsTheMeetingsEndTime: a re-run passes through ended
// again, but the meeting ended when it ended, not when it was re-run.
func TestFaultRerunKeepsTheMeetingsEndTime(t *testing.T) {
	t.Parallel()
	eachDialectClocked(t, func(t *testing.T, s *store.Store, clock *time.Time) {
		ctx := context.Background()
		m, err := s.CreateMeeting(ctx, "Conseil", "fr")
		require.NoError(t, err)
		ended, err := s.Transition(ctx, m.ID, store.MeetingEnded, "")
		require.NoError(t, err)
		require.True(t, ended.EndedAt.Equal(*clock))
		for _, done := range []store.MeetingState{store.MeetingIncomplete, store.MeetingReady, store.MeetingFailed} {
			_, err = s.Transition(ctx, m.ID, done, "")
			require.NoError(t, err)
			*clock = clock.Add(time.Hour)
			again, err := s.Transition(ctx, m.ID, store.MeetingEnded, "")
			require.NoError(t, err, "a %s meeting can be re-run", done)
			require.True(t, again.EndedAt.Equal(ended.EndedAt), "re-run from %s moved ended_at to %v", done, again.EndedAt)
		}
	})
}

// Segments waiting for a backend say so, and stop saying so once done.
func TestSegmentWaitsUntilTranscribed(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		m, err := s.CreateMeeting(ctx, "", "")
		require.NoError(t, err)
		_, err = s.Join(ctx, m.ID, "alice", "Alice")
		require.NoError(t, err)
		tr := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "alice"}
		require.NoError(t, s.CreateTrack(ctx, tr))
		for _, start := range []int64{1000, 5000} {
			require.NoError(t, s.UpsertSpeechSegment(ctx, store.SpeechSegment{MeetingID: m.ID, TrackID: tr.ID, Identity: "alice",
				StartMS: start, EndMS: start + 1500, AudioStartMS: start, AudioKey: "k"}))
		}
		require.NoError(t, s.SegmentWaits(ctx, tr.ID, 1000, "server A", "503 Service Unavailable"))
		first, err := s.SpeechSegment(ctx, tr.ID, 1000)
		require.NoError(t, err)
		require.False(t, first.WaitingSince.IsZero())
		require.NoError(t, s.SegmentWaits(ctx, tr.ID, 1000, "server A", "connection refused"))
		p, err := s.Progress(ctx, m.ID)
		require.NoError(t, err)
		require.Len(t, p.Waiting, 1)
		w := p.Waiting[0]
		require.Equal(t, store.Wait{Stage: "transcribe", TrackID: tr.ID, Identity: "alice", StartMS: 1000, EndMS: 2500,
			Backend: "server A", Since: first.WaitingSince, LastError: "connection refused"}, w, "waits since the first failure")

		require.NoError(t, s.SaveTranscript(ctx, tr.ID, 1000, "alpha", "en", nil))
		p, err = s.Progress(ctx, m.ID)
		require.NoError(t, err)
		require.Empty(t, p.Waiting)
		require.NoError(t, s.SegmentWaits(ctx, tr.ID, 1000, "server A", "late"))
		p, err = s.Progress(ctx, m.ID)
		require.NoError(t, err)
		require.Empty(t, p.Waiting, "a transcribed segment waits for nothing")
	})
}

// A meeting's webhook deliveries: failing since the first failure after the
// last success, cleared by a success; the same on both databases.
func TestWebhookStatusKeepsWhenDeliveriesBeganFailing(t *testing.T) {
	t.Parallel()
	eachDialectClocked(t, func(t *testing.T, s *store.Store, clock *time.Time) {
		ctx := context.Background()
		m, err := s.CreateMeeting(ctx, "", "")
		require.NoError(t, err)
		_, err = s.WebhookStatus(ctx, m.ID)
		require.ErrorIs(t, err, store.ErrNotFound)

		first := *clock
		require.NoError(t, s.WebhookAttempted(ctx, m.ID, "hooks.example", "minutes.ready", "answered 500"))
		*clock = clock.Add(time.Minute)
		require.NoError(t, s.WebhookAttempted(ctx, m.ID, "hooks.example", "minutes.ready", "answered 502"))
		w, err := s.WebhookStatus(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, store.WebhookStatus{URLHost: "hooks.example", LastEvent: "minutes.ready", LastError: "answered 502",
			FailingSince: first}, w)

		*clock = clock.Add(time.Minute)
		require.NoError(t, s.WebhookAttempted(ctx, m.ID, "hooks.example", "archive.ready", ""))
		w, err = s.WebhookStatus(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, store.WebhookStatus{URLHost: "hooks.example", LastEvent: "archive.ready", DeliveredAt: *clock}, w)
	})
}
