package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
)

type trackJSON struct {
	ID         string           `json:"id"`
	Identity   string           `json:"identity"`
	State      store.TrackState `json:"state"`
	StartMS    int64            `json:"start_ms"`
	DurationMS int64            `json:"duration_ms"`
	GapMS      int64            `json:"gap_ms,omitempty"`
	Size       int64            `json:"size"`
	SHA256     string           `json:"sha256,omitempty"`
	Failure    string           `json:"failure,omitempty"`
	// Damaged is set when the stored WebM no longer matches SHA256.
	Damaged *damageJSON `json:"damaged,omitempty"`
	URL     string      `json:"url,omitempty"`
	// SpeakerURL is the speaker's audio on the meeting's timing.
	SpeakerURL string `json:"speaker_url,omitempty"`
}

type damageJSON struct {
	Key     string    `json:"key"`
	Detail  string    `json:"detail"`
	FoundAt time.Time `json:"found_at"`
}

// tracksTiming is said beside every track listing: the one thing about
// the WebMs that tools get wrong without a warning.
const tracksTiming = "Each track's WebM keeps its silences as gaps between timestamps (start_ms places its " +
	"first sample on the meeting clock): players honour them, but a plain conversion such as " +
	"`ffmpeg -i track.webm out.wav` drops the gaps and the audio no longer lines up with the meeting. " +
	"For a speaker's audio on the meeting's timing (decoded, silences filled, starting at the meeting's " +
	"zero, as long as the meeting) download speaker_url."

// listTracks lists a meeting's recorded track segments for archivists: each
// with its place on the meeting clock, size, checksum, damage if any, and
// download paths.
func (a *API) listTracks(w http.ResponseWriter, r *http.Request) {
	m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	pg, ok := pageOf(w, r, defaultPage, maxPage)
	if !ok {
		return
	}
	all, err := a.store.Tracks(r.Context(), m.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ts, next := slicePage(all, pg)
	damaged, err := a.damagedByKey(r.Context(), m.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]trackJSON, len(ts))
	for i, t := range ts {
		out[i] = trackJSON{ID: t.ID, Identity: t.Identity, State: t.State, StartMS: t.StartMS, DurationMS: t.DurationMS,
			GapMS: t.GapMS, Size: t.Size, SHA256: t.SHA256, Failure: t.Failure, Damaged: damaged[t.BlobKey]}
		if downloadable(t) {
			out[i].URL = "/v1/meetings/" + m.ID + "/tracks/" + t.ID + ".webm"
			out[i].SpeakerURL = speakerURL(m.ID, t.Identity)
		}
	}
	answer := listJSON("tracks", out, next)
	answer["timing"] = tracksTiming
	writeJSON(w, http.StatusOK, answer)
}

func speakerURL(meetingID, identity string) string {
	return "/v1/meetings/" + meetingID + "/speakers/" + url.PathEscape(identity) + ".flac"
}

func (a *API) damagedByKey(ctx context.Context, meetingID string) (map[string]*damageJSON, error) {
	all, err := a.store.Damaged(ctx, meetingID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*damageJSON, len(all))
	for _, d := range all {
		out[d.BlobKey] = &damageJSON{Key: d.BlobKey, Detail: d.Detail, FoundAt: d.FoundAt}
	}
	return out, nil
}

func downloadable(t store.Track) bool {
	return t.State == store.TrackStored || t.State == store.TrackRecovered
}

// getTrack sends one track's WebM.
func (a *API) getTrack(w http.ResponseWriter, r *http.Request) {
	m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.expired(w, r, m.ID, true) || audioNotKept(w, m) {
		return
	}
	id, ok := strings.CutSuffix(r.PathValue("file"), ".webm")
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "tracks are served as <track id>.webm")
		return
	}
	t, err := a.store.Track(r.Context(), id)
	if err != nil || t.MeetingID != m.ID {
		writeError(w, http.StatusNotFound, "not_found", "meeting "+m.ID+" has no track "+id)
		return
	}
	if !downloadable(t) {
		writeError(w, http.StatusConflict, "not_stored", "track "+t.ID+" is "+string(t.State)+": nothing to download yet")
		return
	}
	a.serveBlob(w, r, download{meetingID: m.ID, key: t.BlobKey, what: "track " + t.ID,
		contentType: "audio/webm", filename: t.ID + ".webm"})
}

// getSpeaker sends one speaker's audio on the meeting's timing, built
// with the whole-meeting files.
func (a *API) getSpeaker(w http.ResponseWriter, r *http.Request) {
	m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.expired(w, r, m.ID, true) || audioNotKept(w, m) {
		return
	}
	identity, ok := strings.CutSuffix(r.PathValue("file"), ".flac")
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "speakers' audio is served as <identity>.flac")
		return
	}
	ts, err := a.store.Tracks(r.Context(), m.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// The speaker's first stored track names the file (store order: by
	// start on the meeting clock, then id), as the pipeline names it.
	for _, t := range ts {
		if t.Identity == identity && downloadable(t) {
			a.serveArchive(w, r, m, download{meetingID: m.ID, key: layout.SpeakerAudio(m.ID, t.ID),
				what: identity + "'s audio", contentType: "audio/flac", filename: m.ID + "-" + identity + ".flac"})
			return
		}
	}
	writeError(w, http.StatusNotFound, "not_found", "meeting "+m.ID+" has no stored recording of "+identity)
}

// getArchive serves a meeting's whole-meeting files: every speaker aligned
// in one WebM, or mixed down to FLAC.
func (a *API) getArchive(key func(string) string, contentType, filename string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if a.expired(w, r, m.ID, true) || audioNotKept(w, m) {
			return
		}
		a.serveArchive(w, r, m, download{meetingID: m.ID, key: key(m.ID), what: filename,
			contentType: contentType, filename: m.ID + "-" + filename})
	}
}

// serveArchive serves a file built from the recordings, or says why it is
// not there: not built yet, nothing recorded, or a damaged recording.
func (a *API) serveArchive(w http.ResponseWriter, r *http.Request, m store.Meeting, d download) {
	_, err := a.blobs.Stat(r.Context(), d.key)
	if err == nil {
		a.serveBlob(w, r, d)
		return
	}
	if !errors.Is(err, blob.ErrNotFound) {
		a.fail(w, r, err)
		return
	}
	ts, err := a.store.Tracks(r.Context(), m.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	damaged, err := a.damagedByKey(r.Context(), m.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	stored, recording := 0, 0
	for _, t := range ts {
		if downloadable(t) {
			stored++
		}
		if t.State == store.TrackRecording {
			recording++
		}
		if dm := damaged[t.BlobKey]; dm != nil {
			writeError(w, http.StatusConflict, "damaged", fmt.Sprintf(
				"%s cannot be built: track %s (%s) is damaged in storage (%s). Restore it from a backup, then rerun the meeting.",
				d.what, t.ID, t.Identity, dm.Detail))
			return
		}
	}
	var why string
	switch {
	case m.State == store.MeetingCreated || m.State == store.MeetingLive:
		why = "it is built once the meeting has ended and every recording is stored; the meeting is " + string(m.State)
	case stored == 0 && recording == 0:
		why = "nothing was recorded"
	case recording > 0:
		why = fmt.Sprintf("it is built once every recording is stored; %d still being stored", recording)
	default:
		why = "it is being built from the recordings; try again in a moment"
	}
	writeError(w, http.StatusNotFound, "no_archive", fmt.Sprintf("meeting %s has no %s yet: %s", m.ID, d.what, why))
}
