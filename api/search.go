package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/minutes"
)

// maxSearchLen bounds q: a few words to find, not a document.
const maxSearchLen = 500

// Search page sizes.
const (
	defaultSearchLimit = 50
	maxSearchLimit     = 500
)

type hitJSON struct {
	MeetingID string          `json:"meeting_id"`
	Title     string          `json:"title"`
	Speaker   string          `json:"speaker"`
	Name      string          `json:"name"`
	Start     minutes.Seconds `json:"start"`
	End       minutes.Seconds `json:"end"`
	StartAt   *time.Time      `json:"start_at,omitempty"`
	EndAt     *time.Time      `json:"end_at,omitempty"`
	Text      string          `json:"text"`
	// Minutes is the meeting's minutes (kept from the first version of
	// this answer; Links.Minutes narrows it to the hit's time).
	Minutes string `json:"minutes"`
	// Language is the stemming the segment was indexed with: fr, en or "".
	Language string  `json:"language"`
	Score    float64 `json:"score"`
	// Snippet is an excerpt of Text; Highlights are the matched words in
	// it as [start, end) offsets in characters (Unicode code points).
	Snippet    string   `json:"snippet"`
	Highlights [][2]int `json:"highlights"`
	Links      hitLinks `json:"links"`
}

// hitLinks say where to read and hear a hit. The audio links carry a
// W3C media fragment (#t=start,end in seconds): a browser's <audio> plays
// just that stretch; another client sends the path without the fragment
// and seeks to the start itself. Both files exist once the meeting is
// archived (404 before): mix.flac is the whole meeting, the speaker's
// file their voice alone, both on the meeting clock, so the offset is the
// hit's start.
type hitLinks struct {
	Minutes      string `json:"minutes"`
	Audio        string `json:"audio"`
	SpeakerAudio string `json:"speaker_audio"`
}

func hitToJSON(h store.Hit) hitJSON {
	base := "/v1/meetings/" + url.PathEscape(h.MeetingID)
	start, end := minutes.Seconds(h.StartMS), minutes.Seconds(h.EndMS)
	span := seconds(start) + "," + seconds(end)
	out := hitJSON{MeetingID: h.MeetingID, Title: h.Title, Speaker: h.Identity, Name: h.Name,
		Start: start, End: end, Text: h.Text, Minutes: base + "/minutes",
		Language: h.Language, Score: h.Score, Snippet: h.Snippet, Highlights: h.Highlights,
		Links: hitLinks{
			Minutes:      base + "/minutes?from=" + seconds(start) + "&to=" + seconds(end),
			Audio:        base + "/mix.flac#t=" + span,
			SpeakerAudio: base + "/speakers/" + url.PathEscape(h.Identity) + ".flac#t=" + span,
		}}
	if out.Highlights == nil {
		out.Highlights = [][2]int{}
	}
	if !h.StartedAt.IsZero() {
		s := h.StartedAt.Add(time.Duration(h.StartMS) * time.Millisecond).UTC()
		e := h.StartedAt.Add(time.Duration(h.EndMS) * time.Millisecond).UTC()
		out.StartAt, out.EndAt = &s, &e
	}
	return out
}

// seconds writes a meeting-clock time as the JSON does: seconds with
// three decimals.
func seconds(s minutes.Seconds) string {
	b, _ := s.MarshalJSON()
	return string(b)
}

// searchQuery reads a search from query values: q, meeting, speaker,
// language, from, to, limit, cursor. Its error is for the caller: the
// REST search's and the MCP tool's, so it names q as "the query (q)".
func searchQuery(qs url.Values) (store.SearchQuery, error) {
	q := store.SearchQuery{Query: qs.Get("q"), MeetingID: qs.Get("meeting"), Identity: qs.Get("speaker"),
		Cursor: qs.Get("cursor"), Limit: defaultSearchLimit}
	if n := utf8.RuneCountInString(q.Query); n > maxSearchLen {
		return q, fmt.Errorf("the query (q) is %d characters long: search for at most %d", n, maxSearchLen)
	}
	if strings.TrimSpace(q.Query) == "" {
		return q, errors.New("give the query (q): the words to find (\"quoted phrase\", prefix*)")
	}
	switch l := qs.Get("language"); l {
	case "", "fr", "en", "other":
		q.Language = l
	default:
		return q, fmt.Errorf("language must be fr, en or other, not %q", l)
	}
	var err error
	if q.From, err = parseWhen(qs.Get("from"), false); err != nil {
		return q, fmt.Errorf("from: %w", err)
	}
	if q.To, err = parseWhen(qs.Get("to"), true); err != nil {
		return q, fmt.Errorf("to: %w", err)
	}
	if s := qs.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxSearchLimit {
			return q, fmt.Errorf("limit must be 1 to %d", maxSearchLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// parseWhen reads an RFC 3339 instant or a date (UTC); a date as an upper
// bound means the end of that day.
func parseWhen(s string, upper bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2026-12-06) nor an RFC 3339 time (2026-12-06T09:30:00Z)", s)
	}
	if upper {
		d = d.AddDate(0, 0, 1)
	}
	return d, nil
}

// search finds what was said, across meetings, most relevant first.
func (a *API) search(w http.ResponseWriter, r *http.Request) {
	q, err := searchQuery(r.URL.Query())
	if err != nil {
		code := "bad_query"
		if strings.HasPrefix(err.Error(), "limit") {
			code = "bad_limit"
		}
		writeError(w, http.StatusBadRequest, code, err.Error())
		return
	}
	// A host finds only its own meetings' speech: the store filters, so
	// pages are full and the cursor is the store's.
	if p, _ := PrincipalFrom(r.Context()); !p.SeesAll() {
		q.CreatedBy = p.KeyID
	}
	page, err := a.store.Search(r.Context(), q)
	if err != nil {
		a.failSearch(w, r, err)
		return
	}
	out := make([]hitJSON, len(page.Hits))
	for i, h := range page.Hits {
		out[i] = hitToJSON(h)
	}
	body := map[string]any{"hits": out}
	if page.Next != "" {
		body["next_cursor"] = page.Next
	}
	writeJSON(w, http.StatusOK, body)
}

// failSearch answers a query the store refused with a 400.
func (a *API) failSearch(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrBadCursor):
		writeError(w, http.StatusBadRequest, "bad_cursor", err.Error()+": send the next_cursor of the same query")
	case errors.Is(err, store.ErrBadQuery):
		writeError(w, http.StatusBadRequest, "bad_query", err.Error())
	default:
		a.fail(w, r, err)
	}
}
