package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/greffier/greffier/internal/store"
)

// Deleter deletes meetings (jobs.Pipeline): the meeting becomes deleting at
// once, and a durable job removes every trace of it.
type Deleter interface {
	DeleteMeeting(ctx context.Context, meetingID string) (store.Meeting, error)
}

// maxRetention bounds a retention period: a century is "forever" enough,
// and keeps milliseconds far from overflowing.
const maxRetention = 100 * 365 * 24 * time.Hour

// retentionRequest changes a meeting's retention: every field is optional.
type retentionRequest struct {
	// RecordingsSeconds and TranscriptsSeconds are how long after the
	// meeting ended its recordings and transcripts are kept; 0 keeps
	// them forever.
	RecordingsSeconds  *int64 `json:"recordings_seconds"`
	TranscriptsSeconds *int64 `json:"transcripts_seconds"`
	// LegalHold blocks every deletion while set.
	LegalHold *bool `json:"legal_hold"`
}

// change checks the request and says what is wrong, if anything.
func (req retentionRequest) change() (store.RetentionChange, string) {
	var c store.RetentionChange
	for _, f := range []struct {
		name string
		v    *int64
		to   **time.Duration
	}{{"recordings_seconds", req.RecordingsSeconds, &c.Recordings}, {"transcripts_seconds", req.TranscriptsSeconds, &c.Transcripts}} {
		if f.v == nil {
			continue
		}
		d := time.Duration(*f.v) * time.Second
		if *f.v < 0 || d > maxRetention {
			return c, f.name + " must be 0 (keep forever) or a number of seconds up to a century"
		}
		*f.to = &d
	}
	c.LegalHold = req.LegalHold
	return c, ""
}

// retentionJSON is a meeting's retention as the API shows it: the periods
// in force (the meeting's own, or the server's defaults), when each kind
// of data expires or expired, and the legal hold.
type retentionJSON struct {
	RecordingsSeconds   int64      `json:"recordings_seconds"`
	RecordingsDefault   bool       `json:"recordings_default"`
	TranscriptsSeconds  int64      `json:"transcripts_seconds"`
	TranscriptsDefault  bool       `json:"transcripts_default"`
	LegalHold           bool       `json:"legal_hold"`
	RecordingsExpireAt  *time.Time `json:"recordings_expire_at,omitempty"`
	TranscriptsExpireAt *time.Time `json:"transcripts_expire_at,omitempty"`
	RecordingsExpired   *time.Time `json:"recordings_expired_at,omitempty"`
	TranscriptsExpired  *time.Time `json:"transcripts_expired_at,omitempty"`
}

func (a *API) retentionJSON(m store.Meeting, r store.Retention) *retentionJSON {
	out := &retentionJSON{LegalHold: r.LegalHold, RecordingsDefault: r.Recordings == nil, TranscriptsDefault: r.Transcripts == nil,
		RecordingsExpired: timePtr(r.RecordingsExpiredAt), TranscriptsExpired: timePtr(r.TranscriptsExpiredAt)}
	rec, tr := a.cfg.RetainRecordings, a.cfg.RetainTranscripts
	if r.Recordings != nil {
		rec = *r.Recordings
	}
	if r.Transcripts != nil {
		tr = *r.Transcripts
	}
	out.RecordingsSeconds, out.TranscriptsSeconds = int64(rec/time.Second), int64(tr/time.Second)
	if !m.EndedAt.IsZero() && rec > 0 && r.RecordingsExpiredAt.IsZero() {
		out.RecordingsExpireAt = timePtr(m.EndedAt.Add(rec))
	}
	if !m.EndedAt.IsZero() && tr > 0 && r.TranscriptsExpiredAt.IsZero() {
		out.TranscriptsExpireAt = timePtr(m.EndedAt.Add(tr))
	}
	return out
}

// patchRetention sets a meeting's retention periods and legal hold.
func (a *API) patchRetention(w http.ResponseWriter, r *http.Request) {
	var req retentionRequest
	if !decodeBody(w, r, &req) {
		return
	}
	c, msg := req.change()
	if msg != "" {
		writeError(w, http.StatusBadRequest, "bad_retention", msg)
		return
	}
	m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if m.State == store.MeetingDeleting {
		writeError(w, http.StatusConflict, "deleting", "meeting "+m.ID+" is being deleted")
		return
	}
	ret, err := a.store.SetRetention(r.Context(), m.ID, c)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.retentionJSON(m, ret))
}

// deleteMeeting starts a meeting's deletion: 202 with the meeting now
// deleting; once its job is done the meeting is not found (404).
func (a *API) deleteMeeting(w http.ResponseWriter, r *http.Request) {
	m, err := a.deleter.DeleteMeeting(r.Context(), r.PathValue("id"))
	var te *store.TransitionError
	if errors.As(err, &te) && te.From == store.MeetingLive {
		writeError(w, http.StatusConflict, "meeting_live", "meeting "+te.MeetingID+
			" is live: end it first (POST /v1/meetings/"+te.MeetingID+"/end), then delete it")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, toJSON(m))
}

// expired answers 410 when the meeting's recordings (or transcripts) were
// deleted by its retention policy, and says whether it did.
func (a *API) expired(w http.ResponseWriter, r *http.Request, meetingID string, recordings bool) bool {
	ret, err := a.store.Retention(r.Context(), meetingID)
	if err != nil {
		a.fail(w, r, err)
		return true
	}
	switch {
	case recordings && !ret.RecordingsExpiredAt.IsZero():
		writeError(w, http.StatusGone, "recordings_expired", "the recordings of meeting "+meetingID+
			" were deleted on "+ret.RecordingsExpiredAt.Format(time.RFC3339)+" by its retention policy")
		return true
	case !recordings && !ret.TranscriptsExpiredAt.IsZero():
		writeError(w, http.StatusGone, "transcripts_expired", "the transcripts and minutes of meeting "+meetingID+
			" were deleted on "+ret.TranscriptsExpiredAt.Format(time.RFC3339)+" by its retention policy")
		return true
	}
	return false
}
