package api

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/greffier/greffier/internal/blob"
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
	URL        string           `json:"url,omitempty"`
}

// listTracks lists a meeting's recorded track segments for archivists: each
// with its place on the meeting clock, size, checksum and download path.
func (a *API) listTracks(w http.ResponseWriter, r *http.Request) {
	m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ts, err := a.store.Tracks(r.Context(), m.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]trackJSON, len(ts))
	for i, t := range ts {
		out[i] = trackJSON{ID: t.ID, Identity: t.Identity, State: t.State, StartMS: t.StartMS, DurationMS: t.DurationMS,
			GapMS: t.GapMS, Size: t.Size, SHA256: t.SHA256, Failure: t.Failure}
		if downloadable(t) {
			out[i].URL = "/v1/meetings/" + m.ID + "/tracks/" + t.ID + ".webm"
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tracks": out})
}

func downloadable(t store.Track) bool {
	return t.State == store.TrackStored || t.State == store.TrackRecovered
}

// getTrack streams one track's WebM.
func (a *API) getTrack(w http.ResponseWriter, r *http.Request) {
	m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
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
	a.serveBlob(w, r, t.BlobKey, "audio/webm", t.ID+".webm")
}

// getArchive serves a meeting's whole-meeting files once the pipeline has
// built them: every speaker aligned in one WebM, or mixed down to FLAC.
func (a *API) getArchive(key func(string) string, contentType, filename string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if _, err := a.blobs.Stat(r.Context(), key(m.ID)); errors.Is(err, blob.ErrNotFound) {
			writeError(w, http.StatusNotFound, "no_archive", fmt.Sprintf(
				"meeting %s has no %s yet (it is %s): it is built after the minutes are ready", m.ID, filename, m.State))
			return
		}
		a.serveBlob(w, r, key(m.ID), contentType, m.ID+"-"+filename)
	}
}

// serveBlob streams one stored object. Its checksum goes out first in
// Repr-Digest (RFC 9530) so the client can verify; the server verifies as
// it reads, and cuts the connection rather than finish a corrupt body.
func (a *API) serveBlob(w http.ResponseWriter, r *http.Request, key, contentType, filename string) {
	info, err := a.blobs.Stat(r.Context(), key)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rc, err := a.blobs.Get(r.Context(), key)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	if sum, err := hex.DecodeString(info.SHA256); err == nil && len(sum) == 32 {
		w.Header().Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum)+":")
	}
	if _, err := io.Copy(w, rc); err != nil {
		a.log.Error("download cut short", "key", key, "err", err, "corrupt", errors.Is(err, blob.ErrCorrupt))
		// Headers are gone: abort the response so the client sees a
		// broken transfer, never a complete-looking damaged file.
		panic(http.ErrAbortHandler)
	}
}
