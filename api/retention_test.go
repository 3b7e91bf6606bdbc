package api_test

import (
	"context"
	"database/sql"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
)

type retentionAnswer struct {
	RecordingsSeconds  int64      `json:"recordings_seconds"`
	RecordingsDefault  bool       `json:"recordings_default"`
	TranscriptsSeconds int64      `json:"transcripts_seconds"`
	TranscriptsDefault bool       `json:"transcripts_default"`
	LegalHold          bool       `json:"legal_hold"`
	RecordingsExpireAt *time.Time `json:"recordings_expire_at"`
	RecordingsExpired  *time.Time `json:"recordings_expired_at"`
}

func TestRetentionIsSetShownAndExpiredDataAnswersGone(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		id := b.m.ID
		got := decode[struct{ Retention retentionAnswer }](t, b.call(t, "GET", "/v1/meetings/"+id, ""), http.StatusOK)
		require.Equal(t, retentionAnswer{RecordingsDefault: true, TranscriptsDefault: true}, got.Retention,
			"no policy of its own: the server's defaults (forever)")

		for _, body := range []string{`{"recordings_seconds":-1}`, `{"transcripts_seconds":4000000000}`, `{"legal_hold":"yes"}`} {
			a := b.call(t, "PATCH", "/v1/meetings/"+id+"/retention", body)
			require.Equal(t, http.StatusBadRequest, a.status, "%s: %s", body, a.body)
		}
		require.Equal(t, http.StatusNotFound, b.call(t, "PATCH", "/v1/meetings/mtg_nope/retention", `{"legal_hold":true}`).status)

		set := decode[retentionAnswer](t, b.call(t, "PATCH", "/v1/meetings/"+id+"/retention",
			`{"recordings_seconds":3600,"legal_hold":true}`), http.StatusOK)
		require.Equal(t, int64(3600), set.RecordingsSeconds)
		require.False(t, set.RecordingsDefault)
		require.True(t, set.TranscriptsDefault)
		require.True(t, set.LegalHold)
		require.Nil(t, set.RecordingsExpireAt, "the clock starts when the meeting ends")

		require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+id+"/end", "").status)
		m, err := b.store.Meeting(ctx, id)
		require.NoError(t, err)
		got = decode[struct{ Retention retentionAnswer }](t, b.call(t, "GET", "/v1/meetings/"+id, ""), http.StatusOK)
		require.NotNil(t, got.Retention.RecordingsExpireAt)
		require.True(t, m.EndedAt.Add(time.Hour).Equal(*got.Retention.RecordingsExpireAt))
		require.True(t, got.Retention.LegalHold, "PATCH changes only what it names")

		// Once expired, what is gone answers 410, saying so.
		require.NoError(t, b.store.MarkRecordingsExpired(ctx, id))
		require.NoError(t, b.store.InTx(ctx, func(_ *sql.Tx, q store.Queries) error { return q.ExpireTranscripts(ctx, id) }))
		for path, code := range map[string]string{
			"/tracks/trk_x.webm":   "recordings_expired",
			"/mix.flac":            "recordings_expired",
			"/archive.webm":        "recordings_expired",
			"/speakers/alice.flac": "recordings_expired",
			"/minutes":             "transcripts_expired",
			"/minutes.vtt":         "transcripts_expired",
		} {
			a := b.call(t, "GET", "/v1/meetings/"+id+path, "")
			require.Equal(t, http.StatusGone, a.status, "%s: %s", path, a.body)
			require.Contains(t, string(a.body), `"code": "`+code+`"`, path)
		}
		got = decode[struct{ Retention retentionAnswer }](t, b.call(t, "GET", "/v1/meetings/"+id, ""), http.StatusOK)
		require.NotNil(t, got.Retention.RecordingsExpired)
		require.Nil(t, got.Retention.RecordingsExpireAt)
	})
}
