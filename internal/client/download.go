package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// Progress is told how much of a download is on disk, and of how much
// (total is -1 when the server does not say).
type Progress func(done, total int64)

// Download fetches path into dest, resuming: what is already in
// dest+".part" is asked for no more (Range, with If-Range naming the
// version it came from, kept in dest+".part.etag", so a changed object is
// fetched whole again). dest appears only once complete.
func (c *Client) Download(ctx context.Context, path, dest string, progress Progress) (int64, error) {
	part, tagFile := dest+".part", dest+".part.etag"
	have := int64(0)
	if fi, err := os.Stat(part); err == nil {
		have = fi.Size()
	}
	etag := ""
	if b, err := os.ReadFile(tagFile); err == nil {
		etag = strings.TrimSpace(string(b))
	}
	header := http.Header{}
	if have > 0 && etag != "" {
		header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		header.Set("If-Range", etag)
	} else {
		have = 0
	}
	resp, err := c.Request(ctx, http.MethodGet, path, nil, header)
	var apiErr *Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusRequestedRangeNotSatisfiable && have == apiErr.Size {
		// The part is already whole (a download cut after its last byte).
		_ = os.Remove(tagFile)
		return have, os.Rename(part, dest)
	}
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	flags := os.O_CREATE | os.O_WRONLY
	switch resp.StatusCode {
	case http.StatusPartialContent:
		flags |= os.O_APPEND
	case http.StatusOK:
		have = 0
		flags |= os.O_TRUNC
	default:
		return 0, fmt.Errorf("GET %s: unexpected %s", path, resp.Status)
	}
	if et := resp.Header.Get("ETag"); et != "" {
		if err := os.WriteFile(tagFile, []byte(et+"\n"), 0o600); err != nil {
			return 0, fmt.Errorf("remember the download's version: %w", err)
		}
	}
	total := int64(-1)
	if resp.ContentLength >= 0 {
		total = have + resp.ContentLength
	}
	if cr := resp.Header.Get("Content-Range"); cr != "" {
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			if n, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
				total = n
			}
		}
	}
	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", part, err)
	}
	w := &progressWriter{w: f, done: have, total: total, report: progress}
	if progress != nil {
		progress(have, total)
	}
	_, cerr := io.Copy(w, resp.Body)
	if err := f.Close(); cerr == nil {
		cerr = err
	}
	if cerr != nil {
		return w.done, fmt.Errorf("download %s (run again to resume): %w", path, cerr)
	}
	if total >= 0 && w.done != total {
		return w.done, fmt.Errorf("download %s: got %d of %d bytes (run again to resume)", path, w.done, total)
	}
	_ = os.Remove(tagFile)
	return w.done, os.Rename(part, dest)
}

type progressWriter struct {
	w           io.Writer
	done, total int64
	report      Progress
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	if p.report != nil {
		p.report(p.done, p.total)
	}
	return n, err
}
