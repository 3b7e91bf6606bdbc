// Package client is a small client of Greffier's public HTTP API, for the
// greffier command line: requests with an API key, the API's JSON errors
// as Go errors, lists followed across pages, and downloads that resume.
// It knows nothing of Greffier's packages: only the wire.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client calls one server with one key.
type Client struct {
	// BaseURL is the server, such as http://127.0.0.1:8080.
	BaseURL string
	// Key is the API key (or token) sent as a bearer token.
	Key string
	// HTTP defaults to http.DefaultClient.
	HTTP *http.Client
}

// Error is the API's answer to a request it refused:
// {"error":{"code","message"}} with its HTTP status.
type Error struct {
	Status  int
	Code    string
	Message string
	// Size is the object's size a 416 answer states (Content-Range:
	// bytes */N), -1 otherwise.
	Size int64
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("server answered %d %s", e.Status, e.Message)
	}
	return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code)
}

// Request sends method path (path may carry a query) with body encoded as
// JSON when not nil, and returns the response for the caller to read and
// close. A status of 400 or more is returned as *Error.
func (c *Client) Request(ctx context.Context, method, path string, body any, header http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp, nil
}

func readError(resp *http.Response) error {
	size := int64(-1)
	if cr, ok := strings.CutPrefix(resp.Header.Get("Content-Range"), "bytes */"); ok {
		if n, err := strconv.ParseInt(cr, 10, 64); err == nil {
			size = n
		}
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var doc struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &doc) == nil && doc.Error.Message != "" {
		return &Error{Status: resp.StatusCode, Code: doc.Error.Code, Message: doc.Error.Message, Size: size}
	}
	return &Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(raw)), Size: size}
}

// Do sends a request and decodes a JSON answer into out (unless out is
// nil or the answer has no body).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.Request(ctx, method, path, body, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return nil
}

// List gets every item of a list at path, whose answer holds them under
// field, following next_cursor (?cursor=) until the server gives none.
func List[T any](ctx context.Context, c *Client, path, field string) ([]T, error) {
	var all []T
	next := ""
	for page := 0; ; page++ {
		p := path
		if next != "" {
			sep := "?"
			if strings.Contains(p, "?") {
				sep = "&"
			}
			p += sep + "cursor=" + url.QueryEscape(next)
		}
		var doc map[string]json.RawMessage
		if err := c.Do(ctx, http.MethodGet, p, nil, &doc); err != nil {
			return nil, err
		}
		var items []T
		if raw, ok := doc[field]; ok {
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, fmt.Errorf("GET %s: read %s: %w", p, field, err)
			}
		}
		all = append(all, items...)
		next = ""
		if raw, ok := doc["next_cursor"]; ok {
			_ = json.Unmarshal(raw, &next) // null or absent: the last page
		}
		if next == "" {
			return all, nil
		}
		if page > 100000 {
			return nil, errors.New("the server kept answering with a next page: stopped")
		}
	}
}
