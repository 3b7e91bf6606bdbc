package api

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/store"
)

// downloadChunk is how much of an object a download reads, hashes and
// holds at a time. An object (or the end of a range) within one chunk is
// verified before its first byte is sent, so its damage is a clear error
// rather than a broken transfer.
const downloadChunk = 256 << 10

// download is one stored object offered for download.
type download struct {
	meetingID   string
	key         string
	what        string // what the object is, for messages: "track trk_…"
	contentType string
	filename    string
}

// serveBlob sends one stored object, or the single byte range the request
// asks for (RFC 9110: 206 with Content-Range; If-Range by ETag or date;
// several ranges are answered with the whole object, which the RFC
// allows). The ETag is the object's SHA-256, as is Repr-Digest (RFC 9530).
//
// Every byte sent has been hashed with the whole object before the last
// byte of the answer leaves: a stored object has one SHA-256 and no
// per-block digests, so no part of it can be proved good without reading
// all of it. Reading it first and sending it second would read a large
// object twice (from S3, download it twice) and hold the client until the
// whole of it was read; instead one pass reads the object from its start,
// sends the requested bytes as they pass and holds back the chunk holding
// the answer's last byte until the hash is checked at the end of the
// object. If the bytes are wrong, that chunk is never sent and the
// connection is cut, so the client sees a body shorter than its
// Content-Length (curl: exit 18; Go: unexpected EOF), never a complete
// file; when nothing was sent yet it gets 409 "damaged" instead. Either
// way the damage is recorded, shown where the meeting's tracks are listed,
// and later requests get 409 at once, until the object verifies again.
// A range thus costs a read of the whole object on the server's side; it
// still spares the client's link, which is what resuming is for. An object
// sealed at rest is the exception: each of its chunks is authenticated on
// its own, so a range reads and decrypts only the chunks holding it
// (openRange), and a damaged chunk fails before any of its bytes is sent.
func (a *API) serveBlob(w http.ResponseWriter, r *http.Request, d download) {
	ctx := r.Context()
	info, err := a.blobs.Stat(ctx, d.key)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if known, err := a.damageOf(ctx, d); err != nil {
		a.fail(w, r, err)
		return
	} else if known != nil && !a.verifiesAgain(w, r, d, *known) {
		return
	}

	h := w.Header()
	h.Set("Content-Type", d.contentType)
	h.Set("Content-Disposition", `attachment; filename="`+d.filename+`"`)
	h.Set("Accept-Ranges", "bytes")
	if !info.Modified.IsZero() {
		h.Set("Last-Modified", info.Modified.UTC().Format(http.TimeFormat))
	}
	etag := ""
	if sum, err := hex.DecodeString(info.SHA256); err == nil && len(sum) == 32 {
		etag = `"` + info.SHA256 + `"`
		h.Set("ETag", etag)
		h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum)+":")
	}
	if etag != "" && etagListed(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}

	status, start, end := http.StatusOK, int64(0), info.Size-1
	if spec := r.Header.Get("Range"); spec != "" && ifRangeHolds(r.Header.Get("If-Range"), etag, info.Modified) {
		s, e, ok, satisfiable := parseRange(spec, info.Size)
		switch {
		case ok && !satisfiable:
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", info.Size))
			writeError(w, http.StatusRequestedRangeNotSatisfiable, "range_not_satisfiable", fmt.Sprintf(
				"%s holds %d bytes: ask for a range that starts before its end", d.what, info.Size))
			return
		case ok:
			status, start, end = http.StatusPartialContent, s, e
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", s, e, info.Size))
		}
	}
	h.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}

	sent := false
	send := func(b []byte) error {
		if !sent {
			sent = true
			w.WriteHeader(status)
		}
		_, err := w.Write(b)
		return err
	}
	rc, err := a.openRange(ctx, d.key, status, start, end)
	if err == nil && rc != nil {
		defer rc.Close()
		err = sendRange(rc, end-start+1, send)
	} else if err == nil {
		if rc, err = a.blobs.Get(ctx, d.key); err != nil {
			a.fail(w, r, err)
			return
		}
		defer rc.Close()
		err = sendVerified(rc, info.Size, start, end, send)
	}
	switch {
	case err == nil:
		if !sent { // an empty object
			w.WriteHeader(status)
		}
		return
	case errors.Is(err, errClientGone):
		return
	case errors.Is(err, blob.ErrCorrupt):
		a.recordDamage(ctx, d, err)
		if !sent {
			clearDownloadHeaders(h)
			a.writeDamaged(w, d, err.Error())
			return
		}
	}
	a.log.Error("download cut short", "key", d.key, "sent", sent, "err", err, "corrupt", errors.Is(err, blob.ErrCorrupt))
	if !sent {
		clearDownloadHeaders(h)
		a.fail(w, r, err)
		return
	}
	// The status line and part of the body are gone: only cutting the
	// connection tells the client the body is not whole. ErrAbortHandler
	// is net/http's way to do that (and it logs nothing).
	panic(http.ErrAbortHandler)
}

// authenticatedRanger is a store whose objects may prove each of their
// chunks on its own (sealed at rest): sealed is false, and rc nil, for an
// object that can only be verified whole.
type authenticatedRanger interface {
	GetAuthenticatedRange(ctx context.Context, key string, off, n int64) (rc io.ReadCloser, sealed bool, err error)
}

// openRange opens the bytes [start, end] of a sealed object for a range
// request, reading and decrypting only the chunks that hold them: each is
// authenticated before any of its bytes is returned, so the whole-object
// pass of sendVerified is not needed. It returns nil, nil when the request
// is not for a range or the object is not sealed.
func (a *API) openRange(ctx context.Context, key string, status int, start, end int64) (io.ReadCloser, error) {
	ar, ok := a.blobs.(authenticatedRanger)
	if !ok || status != http.StatusPartialContent {
		return nil, nil
	}
	rc, sealed, err := ar.GetAuthenticatedRange(ctx, key, start, end-start+1)
	if err != nil || !sealed {
		return nil, err
	}
	return rc, nil
}

// sendRange hands send the n bytes rc reads, in chunks; rc fails (with
// blob.ErrCorrupt) at a chunk that does not authenticate, before any of
// its bytes.
func sendRange(rc io.Reader, n int64, send func([]byte) error) error {
	buf := make([]byte, min(downloadChunk, max(n, 1)))
	var sent int64
	for sent < n {
		k, err := io.ReadFull(rc, buf[:min(int64(len(buf)), n-sent)])
		if k > 0 {
			if err := send(buf[:k]); err != nil {
				return fmt.Errorf("%w: %w", errClientGone, err)
			}
			sent += int64(k)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("object changed while it was sent: it ended after %d bytes of the range, expected %d", sent, n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// clearDownloadHeaders removes what describes the object, before an
// error is answered in its place.
func clearDownloadHeaders(h http.Header) {
	for _, k := range []string{"Content-Length", "Content-Range", "Content-Disposition", "Accept-Ranges",
		"Last-Modified", "ETag", "Repr-Digest"} {
		h.Del(k)
	}
}

// errClientGone wraps a failed write: the client stopped reading.
var errClientGone = errors.New("client stopped reading")

// sendVerified reads a whole object of size bytes from rc, which fails with
// blob.ErrCorrupt at its end if the bytes are wrong, and hands send the
// bytes [start, end] as they pass, except the chunk holding end, which it
// hands over only once rc has reached its end without complaint.
func sendVerified(rc io.Reader, size, start, end int64, send func([]byte) error) error {
	buf := make([]byte, min(downloadChunk, max(size, 1)))
	var off int64 // object offset of buf[0]
	for {
		n, err := io.ReadFull(rc, buf)
		eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !eof {
			return err
		}
		lo, hi := max(off, start), min(off+int64(n), end+1)
		if lo < hi && hi == end+1 {
			// The answer's last bytes: read the rest, then send them.
			rest := int64(0)
			if !eof {
				if rest, err = io.Copy(io.Discard, rc); err != nil {
					return err
				}
			}
			if total := off + int64(n) + rest; total != size {
				return fmt.Errorf("object changed while it was sent: read %d bytes, expected %d", total, size)
			}
			if err := send(buf[lo-off : hi-off]); err != nil {
				return fmt.Errorf("%w: %w", errClientGone, err)
			}
			return nil
		}
		if lo < hi {
			if err := send(buf[lo-off : hi-off]); err != nil {
				return fmt.Errorf("%w: %w", errClientGone, err)
			}
		}
		off += int64(n)
		if eof {
			if start > end { // nothing asked for: an empty object
				if off != size {
					return fmt.Errorf("object changed while it was sent: read %d bytes, expected %d", off, size)
				}
				return nil
			}
			return fmt.Errorf("object changed while it was sent: it ended after %d bytes, expected %d", off, size)
		}
	}
}

// parseRange reads a Range header of one byte range against an object of
// size bytes. ok is false when the header is to be ignored (not bytes, not
// one range, malformed); satisfiable false when it asks for nothing the
// object holds.
func parseRange(spec string, size int64) (start, end int64, ok, satisfiable bool) {
	spec, found := strings.CutPrefix(spec, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	if first == "" { // the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, true, false
		}
		return max(size-n, 0), size - 1, true, true
	}
	s, err := strconv.ParseInt(first, 10, 64)
	if err != nil || s < 0 {
		return 0, 0, false, false
	}
	e := size - 1
	if last != "" {
		if e, err = strconv.ParseInt(last, 10, 64); err != nil || e < s {
			return 0, 0, false, false
		}
		e = min(e, size-1)
	}
	if s >= size {
		return 0, 0, true, false
	}
	return s, e, true, true
}

// ifRangeHolds reports whether a Range may be honoured under If-Range: no
// If-Range, or one naming the current (strong) ETag, or exactly the
// current Last-Modified date.
func ifRangeHolds(ifRange, etag string, modified time.Time) bool {
	switch {
	case ifRange == "":
		return true
	case strings.HasPrefix(ifRange, `"`) || strings.HasPrefix(ifRange, "W/"):
		return etag != "" && ifRange == etag
	}
	t, err := http.ParseTime(ifRange)
	return err == nil && !modified.IsZero() && t.Equal(modified.UTC().Truncate(time.Second))
}

// etagListed reports whether an If-None-Match list names etag (weakly, as
// RFC 9110 wants for If-None-Match) or is "*".
func etagListed(list, etag string) bool {
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimPrefix(strings.TrimSpace(e), "W/")
		if e == "*" || e == etag {
			return true
		}
	}
	return false
}

// damageOf returns the recorded damage of d's object, or nil.
func (a *API) damageOf(ctx context.Context, d download) (*store.Damage, error) {
	all, err := a.store.Damaged(ctx, d.meetingID)
	if err != nil {
		return nil, err
	}
	for _, dm := range all {
		if dm.BlobKey == d.key {
			return &dm, nil
		}
	}
	return nil, nil
}

// verifiesAgain reads an object recorded as damaged through to its end
// before anything is sent: if it now matches its SHA-256 (restored from a
// backup) the record is cleared and the download goes on; otherwise the
// client gets 409 and false.
func (a *API) verifiesAgain(w http.ResponseWriter, r *http.Request, d download, known store.Damage) bool {
	rc, err := a.blobs.Get(r.Context(), d.key)
	if err != nil {
		a.fail(w, r, err)
		return false
	}
	_, err = io.Copy(io.Discard, rc)
	_ = rc.Close()
	switch {
	case errors.Is(err, blob.ErrCorrupt):
		a.recordDamage(r.Context(), d, err)
		a.writeDamaged(w, d, fmt.Sprintf("%s (first found %s)", err, known.FoundAt.Format(time.RFC3339)))
		return false
	case err != nil:
		a.fail(w, r, err)
		return false
	}
	if err := a.store.ClearDamage(r.Context(), d.key); err != nil {
		a.fail(w, r, err)
		return false
	}
	a.log.Info("damaged object verifies again", "key", d.key)
	return true
}

func (a *API) writeDamaged(w http.ResponseWriter, d download, detail string) {
	writeError(w, http.StatusConflict, "damaged", fmt.Sprintf(
		"%s is damaged in storage: its bytes no longer match the SHA-256 recorded when it was stored (%s). "+
			"Nothing was sent. Restore the object from a backup; a rerun rebuilds the whole-meeting files from the recordings.",
		d.what, detail))
}

// recordDamage remembers that d's object is damaged, even if the request
// that found it is gone.
func (a *API) recordDamage(ctx context.Context, d download, found error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	a.log.Error("stored object is damaged", "meeting", d.meetingID, "key", d.key, "err", found)
	if err := a.store.MarkDamaged(ctx, d.meetingID, d.key, found.Error()); err != nil {
		a.log.Error("could not record damaged object", "key", d.key, "err", err)
	}
}
