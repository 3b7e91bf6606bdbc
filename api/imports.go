package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/upload"
	"github.com/greffier/greffier/internal/usertext"
	"github.com/greffier/greffier/jobs"
)

// Importer turns uploaded recordings into a meeting whose minutes are made
// as a live meeting's (jobs.Pipeline).
type Importer interface {
	// CheckFormat tells a file's format by its first bytes and refuses
	// what cannot be imported; it reads nothing further.
	CheckFormat(path string) (audio.Format, error)
	// StartImport records the import (the meeting, importing) and
	// enqueues the job that reads the files.
	StartImport(ctx context.Context, req jobs.ImportRequest) (store.Meeting, error)
}

// uploadJSON is an upload session as the API shows it.
type uploadJSON struct {
	ID       string `json:"id"`
	URL      string `json:"upload_url"`
	Size     int64  `json:"size"`
	Offset   int64  `json:"offset"`
	Complete bool   `json:"complete"`
	// Format is known once the upload is complete, told by its first
	// bytes; whether it reads to its end is for the import to say.
	Format string `json:"format,omitempty"`
}

func toUploadJSON(s upload.Session) uploadJSON {
	return uploadJSON{ID: s.ID, URL: "/v1/imports/" + s.ID, Size: s.Length, Offset: s.Offset, Complete: s.Complete()}
}

func setUploadHeaders(w http.ResponseWriter, s upload.Session) {
	w.Header().Set("Upload-Offset", strconv.FormatInt(s.Offset, 10))
	w.Header().Set("Upload-Length", strconv.FormatInt(s.Length, 10))
	w.Header().Set("Cache-Control", "no-store")
}

// uploadFailed maps an upload error to an answer.
func (a *API) uploadFailed(w http.ResponseWriter, r *http.Request, err error) {
	var oe *upload.OffsetError
	switch {
	case errors.Is(err, upload.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no upload "+r.PathValue("upload")+
			" (it was never created, was used by an import, was deleted, or its content could not be read)")
	case errors.As(err, &oe):
		w.Header().Set("Upload-Offset", strconv.FormatInt(oe.Want, 10))
		writeError(w, http.StatusConflict, "offset_mismatch", oe.Error())
	case errors.Is(err, upload.ErrBusy):
		writeError(w, http.StatusConflict, "upload_busy", err.Error())
	case errors.Is(err, upload.ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", err.Error())
	default:
		a.fail(w, r, err)
	}
}

// createUpload starts an upload session: {"size": bytes}.
func (a *API) createUpload(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Size int64 `json:"size"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Size < 1 {
		writeError(w, http.StatusBadRequest, "bad_size", "size must be the file's length in bytes")
		return
	}
	if _, err := a.uploads.RemoveOlder(a.now().Add(-uploadsUnusedFor)); err != nil {
		a.log.Warn("abandoned uploads not removed", "err", err)
	}
	s, err := a.uploads.Create(req.Size, uploadOwner(r))
	if err != nil {
		a.uploadFailed(w, r, err)
		return
	}
	setUploadHeaders(w, s)
	w.Header().Set("Location", strings.TrimSuffix(a.cfg.NodeURL, "/")+"/v1/imports/"+s.ID)
	writeJSON(w, http.StatusCreated, toUploadJSON(s))
}

// uploadOwner names the key an upload belongs to: only it may use the
// upload (another key is told there is none).
func uploadOwner(r *http.Request) string {
	p, _ := PrincipalFrom(r.Context())
	return "key:" + p.KeyID
}

// ownUpload is an upload of the caller's key not yet used by an import;
// any other is ErrNotFound.
func (a *API) ownUpload(r *http.Request, id string) (upload.Session, error) {
	s, err := a.uploads.Stat(id)
	if err != nil {
		return s, err
	}
	if s.Owner != uploadOwner(r) || s.ClaimedBy != "" {
		return upload.Session{}, fmt.Errorf("upload %s: %w", id, upload.ErrNotFound)
	}
	return s, nil
}

// headUpload tells how many bytes of an upload arrived.
func (a *API) headUpload(w http.ResponseWriter, r *http.Request) {
	s, err := a.ownUpload(r, r.PathValue("upload"))
	if err != nil {
		a.uploadFailed(w, r, err)
		return
	}
	setUploadHeaders(w, s)
	w.WriteHeader(http.StatusOK)
}

// patchUpload appends the body at Upload-Offset. The upload that this
// completes has its format told by its first bytes: one that is not audio
// Greffier can import is deleted and refused. Reading it to its end is
// the import job's.
func (a *API) patchUpload(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/offset+octet-stream" {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the bytes as application/offset+octet-stream")
		return
	}
	offset, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || offset < 0 {
		writeError(w, http.StatusBadRequest, "bad_offset", "Upload-Offset must say where these bytes start (HEAD the upload to ask)")
		return
	}
	id := r.PathValue("upload")
	if _, err := a.ownUpload(r, id); err != nil {
		a.uploadFailed(w, r, err)
		return
	}
	s, err := a.uploads.Append(r.Context(), id, offset, r.Body)
	if err != nil {
		a.uploadFailed(w, r, err)
		return
	}
	out := toUploadJSON(s)
	if s.Complete() {
		path, perr := a.uploadPath(id)
		if perr != nil {
			a.uploadFailed(w, r, perr)
			return
		}
		format, err := a.importer.CheckFormat(path)
		if err != nil {
			a.refuseUpload(w, r, id, err, "")
			return
		}
		out.Format = string(format)
	}
	setUploadHeaders(w, s)
	writeJSON(w, http.StatusOK, out)
}

// uploadPath is a complete upload's file.
func (a *API) uploadPath(id string) (string, error) {
	f, _, err := a.uploads.Open(id)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return f.Name(), nil
}

// refuseUpload deletes an upload whose content cannot be imported and says
// why: nothing of it stays.
func (a *API) refuseUpload(w http.ResponseWriter, r *http.Request, id string, err error, which string) {
	if rerr := a.uploads.Remove(id); rerr != nil {
		a.fail(w, r, rerr)
		return
	}
	switch {
	case errors.Is(err, jobs.ErrUnsupportedFormat):
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_format", which+err.Error()+"; the upload was deleted")
	case errors.Is(err, jobs.ErrUnreadable):
		writeError(w, http.StatusUnprocessableEntity, "unreadable_audio", which+err.Error()+"; the upload was deleted")
	default:
		a.fail(w, r, err)
	}
}

func (a *API) deleteUpload(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("upload")
	if _, err := a.ownUpload(r, id); err != nil {
		a.uploadFailed(w, r, err)
		return
	}
	if err := a.uploads.Remove(id); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type importFileRequest struct {
	Upload      string `json:"upload"`
	Identity    string `json:"identity"`
	DisplayName string `json:"display_name"`
}

type importRequest struct {
	Title    string `json:"title"`
	Language string `json:"language"`
	// Speakers are one recording per speaker, all starting at the
	// meeting's zero.
	Speakers []importFileRequest `json:"speakers"`
	// Mixed is one recording of every voice, told apart by the
	// diarization backend.
	Mixed     *importFileRequest `json:"mixed"`
	Retention *retentionRequest  `json:"retention"`
}

// importMeeting records an import of complete uploads: the meeting is
// importing (its progress in GET /v1/meetings/{id}) while a job reads the
// files; it then ends, and its minutes follow as a live meeting's do, or
// it fails saying which file could not be read. The uploads are used up.
func (a *API) importMeeting(w http.ResponseWriter, r *http.Request) {
	var req importRequest
	if !decodeBody(w, r, &req) {
		return
	}
	files := req.Speakers
	if req.Mixed != nil {
		if req.Mixed.Identity == "" {
			req.Mixed.Identity = "room"
		}
		files = append(files, *req.Mixed)
	}
	if len(files) == 0 || len(files) > 100 {
		writeError(w, http.StatusBadRequest, "bad_import", "send 1 to 100 speakers' files, or one mixed file, each as {\"upload\": id, \"identity\": ...}")
		return
	}
	req.Title = strings.TrimSpace(req.Title)
	if err := usertext.CheckLine(req.Title, maxTitleLen); err != nil {
		writeError(w, http.StatusBadRequest, "bad_title", "title "+err.Error())
		return
	}
	if !usertext.ValidLanguage(req.Language) {
		writeError(w, http.StatusBadRequest, "bad_language", "language "+strconv.Quote(req.Language)+" is not a language tag")
		return
	}
	var retention store.RetentionChange
	if req.Retention != nil {
		var msg string
		if retention, msg = req.Retention.change(); msg != "" {
			writeError(w, http.StatusBadRequest, "bad_retention", msg)
			return
		}
	}
	ireq := jobs.ImportRequest{Title: req.Title, Language: req.Language, Retention: retention}
	if p, ok := PrincipalFrom(r.Context()); ok {
		ireq.CreatedBy = p.KeyID
	}
	seen := map[string]bool{}
	for i, f := range files {
		p := participantRequest{Identity: f.Identity, DisplayName: f.DisplayName}
		if msg := a.checkParticipant(&p); msg != "" {
			writeError(w, http.StatusBadRequest, "bad_participant", msg)
			return
		}
		if seen[p.Identity] || seen["upload:"+f.Upload] {
			writeError(w, http.StatusBadRequest, "bad_import", "each speaker and each upload appears once")
			return
		}
		seen[p.Identity], seen["upload:"+f.Upload] = true, true
		s, err := a.ownUpload(r, f.Upload)
		if err != nil {
			if errors.Is(err, upload.ErrNotFound) {
				writeError(w, http.StatusBadRequest, "bad_upload", fmt.Sprintf("file %d (%s): no upload %q", i, p.Identity, f.Upload))
				return
			}
			a.fail(w, r, err)
			return
		}
		if !s.Complete() {
			writeError(w, http.StatusConflict, "upload_incomplete", fmt.Sprintf("file %d (%s): upload %s has %d of its %d bytes: send the rest first",
				i, p.Identity, f.Upload, s.Offset, s.Length))
			return
		}
		ireq.Files = append(ireq.Files, jobs.ImportFile{Identity: p.Identity, DisplayName: p.DisplayName,
			Mixed: req.Mixed != nil && i == len(files)-1, Upload: f.Upload})
	}
	m, err := a.importer.StartImport(r.Context(), ireq)
	var fe *jobs.FileError
	switch {
	case errors.As(err, &fe) && (errors.Is(err, jobs.ErrUnsupportedFormat) || errors.Is(err, jobs.ErrUnreadable)):
		a.refuseUpload(w, r, files[fe.Index].Upload, fe.Err, fmt.Sprintf("file %d (%s): ", fe.Index, fe.Identity))
		return
	case errors.As(err, &fe) && (errors.Is(err, upload.ErrClaimed) || errors.Is(err, upload.ErrBusy) || errors.Is(err, upload.ErrNotFound)):
		writeError(w, http.StatusConflict, "upload_busy", fe.Error())
		return
	case errors.Is(err, jobs.ErrNoDiarization):
		writeError(w, http.StatusConflict, "diarization_unavailable", err.Error())
		return
	case err != nil:
		a.fail(w, r, err)
		return
	}
	ret, err := a.store.Retention(r.Context(), m.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := toJSON(m)
	out.Retention = a.retentionJSON(m, ret)
	w.Header().Set("Location", "/v1/meetings/"+m.ID)
	writeJSON(w, http.StatusAccepted, out)
}

// uploadsUnusedFor is how long an upload session may go unused before
// it is deleted as abandoned.
const uploadsUnusedFor = 24 * time.Hour
