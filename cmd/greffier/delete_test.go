package main

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/testenv"
)

func TestDeletedMeetingLeavesNothing(t *testing.T) {
	t.Parallel()
	for name, scaleOut := range map[string]bool{"sqlite+disk": false, "postgres+s3": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testDeletedMeetingLeavesNothing(t, setup(t, setupOptions{scaleOut: scaleOut}))
		})
	}
}

func testDeletedMeetingLeavesNothing(t *testing.T, b *testBundle) {
	ctx := context.Background()
	hooks := newHookReceiver(t, b.app.webhookSecret)
	mt, now := b.holdMeeting(t, map[string]string{"alice": "Alice", "bob": "Bob"}, holdOptions{webhook: hooks.srv.URL})
	require.Equal(t, "ready", now.State, "pipeline: %+v", now.Pipeline)
	id := mt.id
	// Everything a meeting leaves: archives built, webhook delivered, a
	// retention policy and a rename.
	require.Eventually(t, func() bool {
		var s string
		return b.call(t, "GET", "/v1/meetings/"+id+"/mix.flac", nil, &s) == http.StatusOK
	}, 60*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { return hooks.has("minutes.ready", 0) }, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, http.StatusOK, b.call(t, "PATCH", "/v1/meetings/"+id+"/participants/bob", map[string]any{"display_name": "Robert"}, nil))

	// A bystander that must keep everything.
	var other meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{"title": "Autre",
		"retention":    map[string]any{"recordings_seconds": 3600},
		"participants": []map[string]any{{"identity": "carol"}}}, &other))

	// The scan sees the meeting everywhere before: it can fail.
	before := b.traces(t, id)
	for _, table := range []string{"meetings", "participants", "tracks", "speech_segments", "minutes", "events",
		"join_tokens", "retention", "webhook_status", "river_job"} {
		require.Contains(t, before, table, "traces before deletion: %v", before)
	}
	require.Contains(t, before, "blob:meetings/"+id+"/archive/mix.flac")
	otherBefore := b.traces(t, other.ID)
	// What was said is found, and is in the full-text index.
	require.Contains(t, b.searchMeetings(t, "foxtrot golf"), id)
	require.Positive(t, b.indexEntries(t, "foxtrot"))

	// Legal hold refuses deletion and keeps everything.
	var ret map[string]any
	require.Equal(t, http.StatusOK, b.call(t, "PATCH", "/v1/meetings/"+id+"/retention", map[string]any{"legal_hold": true}, &ret))
	require.Equal(t, true, ret["legal_hold"])
	var refused struct {
		Error struct{ Code, Message string }
	}
	require.Equal(t, http.StatusConflict, b.call(t, "DELETE", "/v1/meetings/"+id, nil, &refused))
	require.Equal(t, "legal_hold", refused.Error.Code)
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+id+"/minutes", nil, nil))
	require.Equal(t, http.StatusOK, b.call(t, "PATCH", "/v1/meetings/"+id+"/retention", map[string]any{"legal_hold": false}, nil))

	var deleting meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "DELETE", "/v1/meetings/"+id, nil, &deleting))
	require.Equal(t, "deleting", deleting.State)
	require.Eventually(t, func() bool {
		return b.call(t, "GET", "/v1/meetings/"+id, nil, nil) == http.StatusNotFound
	}, 60*time.Second, 100*time.Millisecond)
	require.Equal(t, http.StatusNotFound, b.call(t, "GET", "/v1/meetings/"+id+"/minutes", nil, nil))

	// The finished deletion job is the last row naming the meeting; the
	// retention sweep forgets it.
	var left map[string]int
	require.Eventually(t, func() bool {
		_, err := b.app.pipeline.SweepRetention(ctx)
		require.NoError(t, err)
		left = b.traces(t, id)
		return len(left) == 0
	}, 30*time.Second, 200*time.Millisecond, "left: %v", left)
	// Nothing said in it is found any more, nor left in the index (on
	// SQLite a table of its own, which holds no meeting id for the scan).
	require.Empty(t, b.searchMeetings(t, "foxtrot golf"))
	require.Zero(t, b.indexEntries(t, "foxtrot"))

	// Deleting again: the meeting is gone. The audit log, which is kept
	// on purpose, says who deleted it.
	var audit struct {
		Entries []struct {
			Method, Route string
			MeetingID     string `json:"meeting_id"`
			Status        int
		} `json:"entries"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/audit?meeting="+id, nil, &audit))
	deleted := false
	for _, e := range audit.Entries {
		deleted = deleted || e.Method == "DELETE" && e.Route == "/v1/meetings/{id}" && e.Status == http.StatusAccepted
	}
	require.True(t, deleted, "audit: %+v", audit.Entries)
	// Deleting again: the meeting is gone.
	require.Equal(t, http.StatusNotFound, b.call(t, "DELETE", "/v1/meetings/"+id, nil, nil))
	require.Equal(t, otherBefore, b.traces(t, other.ID), "the bystander keeps everything")
}

// searchMeetings runs a search across every meeting and returns the
// meeting of each hit.
func (b *testBundle) searchMeetings(t *testing.T, q string) []string {
	t.Helper()
	var page struct {
		Hits []struct {
			MeetingID string `json:"meeting_id"`
		} `json:"hits"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/search?q="+url.QueryEscape(q), nil, &page))
	out := []string{}
	for _, h := range page.Hits {
		out = append(out, h.MeetingID)
	}
	return out
}

// indexEntries counts the full-text index's entries holding an indexed
// form, read from the index itself rather than through the rows.
func (b *testBundle) indexEntries(t *testing.T, form string) int {
	t.Helper()
	q := `SELECT count(*) FROM speech_segments WHERE search_vec @@ to_tsquery('simple', $1)`
	if b.app.store.Dialect() == store.SQLite {
		q = `SELECT count(*) FROM speech_fts WHERE speech_fts MATCH $1`
	}
	var n int
	require.NoError(t, b.app.store.DB().QueryRowContext(context.Background(), q, form).Scan(&n))
	return n
}

// traces counts, per table (and per object key, as "blob:<key>", and per
// file under the data directory, as "file:<path>"), what still names the
// meeting: every column of every table of the schema, read from the
// database's own catalog, River's included; every object in the store;
// every file and directory under the data directory (spool, disk blobs
// and their metadata).
func (b *testBundle) traces(t *testing.T, meetingID string) map[string]int {
	t.Helper()
	ctx := context.Background()
	db := b.app.store.DB()
	out := map[string]int{}
	columns := map[string][]string{}
	var q string
	if b.app.store.Dialect() == store.Postgres {
		q = `SELECT table_name, column_name FROM information_schema.columns
			WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`
	} else {
		q = `SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
			WHERE m.type = 'table' ORDER BY m.name, p.cid`
	}
	rows, err := db.QueryContext(ctx, q)
	require.NoError(t, err)
	for rows.Next() {
		var table, col string
		require.NoError(t, rows.Scan(&table, &col))
		columns[table] = append(columns[table], col)
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	require.Contains(t, columns, "meetings")
	for table, cols := range columns {
		if table == "audit_log" {
			continue // kept on purpose: who did what to a meeting outlives it
		}
		var conds []string
		for _, c := range cols {
			conds = append(conds, fmt.Sprintf(`CAST(%q AS TEXT) LIKE $1`, c))
		}
		var n int
		err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) FROM %q WHERE %s`, table, strings.Join(conds, " OR ")),
			"%"+meetingID+"%").Scan(&n)
		if err == sql.ErrNoRows {
			continue
		}
		require.NoError(t, err, "table %s", table)
		if n > 0 {
			out[table] = n
		}
	}
	infos, err := b.app.blobs.List(ctx, "")
	require.NoError(t, err)
	for _, info := range infos {
		if strings.Contains(info.Key, meetingID) {
			out["blob:"+info.Key]++
		}
	}
	require.NoError(t, filepath.WalkDir(b.cfg.DataDir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(path, meetingID) {
			out["file:"+path]++
		}
		return nil
	}))
	return out
}

// TestFaultDeletionOutlivesAnS3Outage: a meeting is deleted while S3 is
// away, for longer than the deletion job's attempts last. The meeting
// stays deleting and says why its deletion failed; once S3 is back, the
// retention sweep takes the deletion up again and it removes every trace.
func TestFaultDeletionOutlivesAnS3Outage(t *testing.T) {
	t.Parallel()
	srv := testenv.StartS3Server(t)
	b := setup(t, setupOptions{scaleOut: true, s3: srv, maxAttempts: 2})
	ctx := context.Background()
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice"}}}, &m))
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
	require.Eventually(t, func() bool {
		var now meetingAnswer
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now)
		return now.State != "ended"
	}, 60*time.Second, 100*time.Millisecond, "the pipeline of a meeting nobody spoke in ends")
	_, err := b.app.blobs.Put(ctx, "meetings/"+m.ID+"/tracks/trk_x.webm", strings.NewReader("recorded"), -1)
	require.NoError(t, err)
	require.Contains(t, b.traces(t, m.ID), "blob:meetings/"+m.ID+"/tracks/trk_x.webm")

	require.NoError(t, srv.Stop())
	var deleting meetingAnswer
	require.Equal(t, http.StatusAccepted, b.call(t, "DELETE", "/v1/meetings/"+m.ID, nil, &deleting))
	require.Equal(t, "deleting", deleting.State)
	jobState := func() string {
		var s string
		err := b.app.store.DB().QueryRowContext(ctx, `SELECT state FROM river_job WHERE kind = 'delete_meeting'
			AND args->>'meeting_id' = $1 ORDER BY id DESC LIMIT 1`, m.ID).Scan(&s)
		require.NoError(t, err)
		return s
	}
	require.Eventually(t, func() bool { return jobState() == "discarded" }, 3*time.Minute, 200*time.Millisecond,
		"the deletion uses up its attempts while S3 is away")
	var now meetingAnswer
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now))
	require.Equal(t, "deleting", now.State)
	require.Contains(t, now.Failure, "deletion attempt 2 failed, will be retried", "the meeting says why it is still there")
	faulttest.Report(t, faulttest.FaultsInjected, 1)

	require.NoError(t, srv.Start())
	var left map[string]int
	require.Eventually(t, func() bool {
		_, err := b.app.pipeline.SweepRetention(ctx)
		require.NoError(t, err)
		left = b.traces(t, m.ID)
		return len(left) == 0
	}, 2*time.Minute, 500*time.Millisecond, "left: %v", left)
	require.Equal(t, http.StatusNotFound, b.call(t, "GET", "/v1/meetings/"+m.ID, nil, nil))
}

// TestTheServerExpiresRecordingsByItsDefaultRetention: a server set to
// keep recordings a second after a meeting ends (GREFFIER_RETAIN_RECORDINGS)
// and to sweep often deletes them by itself, and says so; the minutes,
// kept forever by default, stay.
func TestTheServerExpiresRecordingsByItsDefaultRetention(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{configure: func(c *Config) {
		c.RetainRecordings = time.Second
		c.RetentionSweepInterval = 200 * time.Millisecond
	}})
	ctx := context.Background()
	var m meetingAnswer
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
		"participants": []map[string]any{{"identity": "alice"}}}, &m))
	track := "meetings/" + m.ID + "/tracks/trk_x.webm"
	_, err := b.app.blobs.Put(ctx, track, strings.NewReader("recorded"), -1)
	require.NoError(t, err)
	var ret struct {
		Retention struct {
			RecordingsSeconds  int64      `json:"recordings_seconds"`
			RecordingsDefault  bool       `json:"recordings_default"`
			TranscriptsSeconds int64      `json:"transcripts_seconds"`
			RecordingsExpired  *time.Time `json:"recordings_expired_at"`
		} `json:"retention"`
		State string `json:"state"`
	}
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &ret))
	require.Equal(t, int64(1), ret.Retention.RecordingsSeconds)
	require.True(t, ret.Retention.RecordingsDefault)
	require.Zero(t, ret.Retention.TranscriptsSeconds, "transcripts: forever")
	require.Nil(t, ret.Retention.RecordingsExpired, "a meeting not ended keeps its recordings")

	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+m.ID+"/end", nil, nil))
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &ret)
		return ret.Retention.RecordingsExpired != nil
	}, 60*time.Second, 100*time.Millisecond, "the periodic sweep expires the recordings without being asked")
	infos, err := b.app.blobs.List(ctx, "meetings/"+m.ID+"/tracks/")
	require.NoError(t, err)
	require.Empty(t, infos, "the track's object is deleted")
	var gone struct{ Error struct{ Code string } }
	require.Equal(t, http.StatusGone, b.call(t, "GET", "/v1/meetings/"+m.ID+"/tracks/trk_x.webm", nil, &gone))
	require.Equal(t, "recordings_expired", gone.Error.Code)
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID, nil, nil), "the meeting itself stays")
}
