package diarize

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxMediaKey bounds a media key's length.
const maxMediaKey = 1024

// checkMediaKey keeps keys to what every pyannote-style server and every
// object store takes: letters, digits, "-", "_", "." and "/" between
// non-empty, non-dot segments.
func checkMediaKey(key string) error {
	if key == "" || len(key) > maxMediaKey {
		return fmt.Errorf("%w: media key of %d bytes, want 1 to %d", ErrInvalidRequest, len(key), maxMediaKey)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: media key %q has an empty or dot segment", ErrInvalidRequest, key)
		}
		for _, r := range seg {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
			if !ok {
				return fmt.Errorf("%w: media key %q may hold only letters, digits, '-', '_', '.' and '/'", ErrInvalidRequest, key)
			}
		}
	}
	return nil
}

// Upload puts size bytes from r into the server's temporary media store
// under key and returns "media://key", an audio URL for Diarize. It is for
// audio the server cannot fetch itself (local disk storage, a private
// bucket); with S3 storage, a presigned GET avoids the copy.
//
// The server answers POST /v1/media/input with a presigned PUT, which is
// sent without the API key. Upload is bounded by ctx only: a large file
// takes as long as it takes.
func (p *Pyannote) Upload(ctx context.Context, key string, r io.Reader, size int64) (string, error) {
	if err := checkMediaKey(key); err != nil {
		return "", err
	}
	if size <= 0 || size > MaxUploadSize {
		return "", fmt.Errorf("%w: upload of %d bytes, want 1 to %d", ErrInvalidRequest, size, int64(MaxUploadSize))
	}
	mediaURL := "media://" + key
	body, err := p.call(ctx, "upload", http.MethodPost, "/v1/media/input", map[string]string{"url": mediaURL})
	if err != nil {
		return "", err
	}
	var ans struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return "", fmt.Errorf("diarization upload: %w: %w", ErrBadAnswer, err)
	}
	if u, err := url.Parse(ans.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("diarization upload: %w: presigned URL %q", ErrBadAnswer, ans.URL)
	}
	// The body is wrapped so the client cannot see through it to an
	// *os.File and send more (or less) than size bytes.
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, ans.URL, io.LimitReader(r, size))
	if err != nil {
		return "", fmt.Errorf("diarization upload: %w", err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	if _, err := p.do(ctx, "upload", req); err != nil {
		return "", err
	}
	p.log.DebugContext(ctx, "diarization media uploaded", "key", key, "bytes", size)
	return mediaURL, nil
}
