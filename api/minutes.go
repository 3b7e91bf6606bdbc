package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/minutes"
)

// renderings maps a file extension to its content type and writer.
var renderings = map[string]struct {
	contentType string
	write       func(minutes.Document, io.Writer) error
}{
	"json": {"application/json", func(d minutes.Document, w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}},
	"vtt": {"text/vtt; charset=utf-8", minutes.Document.WriteVTT},
	"srt": {"application/x-subrip; charset=utf-8", minutes.Document.WriteSRT},
	"md":  {"text/markdown; charset=utf-8", minutes.Document.WriteMarkdown},
	"txt": {"text/plain; charset=utf-8", minutes.Document.WriteText},
}

// renderingExts lists the renderings' extensions in the order the routes
// and the docs give them.
var renderingExts = []string{"json", "vtt", "srt", "md", "txt"}

// getMinutes serves the latest minutes (or ?version=N) in the format of
// the path's extension, else ?format=, else JSON.
func (a *API) getMinutes(ext string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		format := ext
		if format == "" {
			format = r.URL.Query().Get("format")
		}
		if format == "" {
			format = "json"
		}
		rendering, ok := renderings[format]
		if !ok {
			writeError(w, http.StatusBadRequest, "bad_format", "format must be json, vtt, srt, md or txt")
			return
		}
		m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		var v store.MinutesVersion
		if s := r.URL.Query().Get("version"); s != "" {
			n, perr := strconv.Atoi(s)
			if perr != nil || n < 1 {
				writeError(w, http.StatusBadRequest, "bad_version", "version must be a positive integer")
				return
			}
			v, err = a.store.Minutes(r.Context(), m.ID, n)
		} else {
			v, err = a.store.LatestMinutes(r.Context(), m.ID)
		}
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, "no_minutes",
				fmt.Sprintf("meeting %s has no such minutes yet (it is %s); see GET /v1/meetings/%s for progress", m.ID, m.State, m.ID))
			return
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		var doc minutes.Document
		if err := json.Unmarshal(v.Body, &doc); err != nil {
			a.fail(w, r, fmt.Errorf("decode minutes v%d of %s: %w", v.Version, m.ID, err))
			return
		}
		// Names as they are now: a participant renamed after the meeting
		// is shown with the new name.
		parts, err := a.store.Participants(r.Context(), m.ID)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		names := make(map[string]string, len(parts))
		for _, p := range parts {
			names[p.Identity] = p.DisplayName
		}
		doc.Rename(names)
		var buf bytes.Buffer
		if err := rendering.write(doc, &buf); err != nil {
			a.fail(w, r, err)
			return
		}
		// The tag is the rendering's own hash: a rename or a new version
		// changes it, a poll of unchanged minutes costs no body.
		sum := sha256.Sum256(buf.Bytes())
		etag := `"` + hex.EncodeToString(sum[:16]) + `"`
		h := w.Header()
		h.Set("ETag", etag)
		h.Set("Cache-Control", "private, no-cache")
		h.Set("X-Minutes-Version", strconv.Itoa(v.Version))
		if inm := r.Header.Get("If-None-Match"); inm != "" && etagListed(inm, etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", rendering.contentType)
		_, _ = w.Write(buf.Bytes())
	}
}
