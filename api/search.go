package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/minutes"
)

// maxSearchLen bounds q: a few words to find, not a document (SQLite
// refuses LIKE patterns past 50,000 bytes, and no one types that).
const maxSearchLen = 500

type hitJSON struct {
	MeetingID string          `json:"meeting_id"`
	Title     string          `json:"title"`
	Speaker   string          `json:"speaker"`
	Name      string          `json:"name"`
	Start     minutes.Seconds `json:"start"`
	End       minutes.Seconds `json:"end"`
	StartAt   *time.Time      `json:"start_at,omitempty"`
	Text      string          `json:"text"`
	// Minutes is where to read the context: the minutes, at this time.
	Minutes string `json:"minutes"`
}

// search finds what was said, across meetings: every word of q must
// appear in a stretch of speech. ?meeting= and ?speaker= narrow it.
func (a *API) search(w http.ResponseWriter, r *http.Request) {
	qs := r.URL.Query()
	if n := utf8.RuneCountInString(qs.Get("q")); n > maxSearchLen {
		writeError(w, http.StatusBadRequest, "bad_query", fmt.Sprintf("q is %d characters long: search for at most %d", n, maxSearchLen))
		return
	}
	terms := strings.Fields(qs.Get("q"))
	if len(terms) == 0 || len(terms) > 20 {
		writeError(w, http.StatusBadRequest, "bad_query", "give q: 1 to 20 words to find")
		return
	}
	limit := 50
	if s := qs.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			writeError(w, http.StatusBadRequest, "bad_limit", "limit must be 1 to 500")
			return
		}
		limit = n
	}
	hits, err := a.store.Search(r.Context(), store.SearchQuery{Terms: terms, MeetingID: qs.Get("meeting"),
		Identity: qs.Get("speaker"), Limit: limit})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]hitJSON, len(hits))
	names := map[string]map[string]string{}
	starts := map[string]time.Time{}
	for i, h := range hits {
		if _, ok := names[h.MeetingID]; !ok {
			names[h.MeetingID] = map[string]string{}
			if ps, err := a.store.Participants(r.Context(), h.MeetingID); err == nil {
				for _, p := range ps {
					names[h.MeetingID][p.Identity] = p.DisplayName
				}
			}
			if m, err := a.store.Meeting(r.Context(), h.MeetingID); err == nil {
				starts[h.MeetingID] = m.StartedAt
			}
		}
		out[i] = hitJSON{MeetingID: h.MeetingID, Title: h.Title, Speaker: h.Identity, Name: names[h.MeetingID][h.Identity],
			Start: minutes.Seconds(h.StartMS), End: minutes.Seconds(h.EndMS), Text: h.Text,
			Minutes: "/v1/meetings/" + h.MeetingID + "/minutes"}
		if z := starts[h.MeetingID]; !z.IsZero() {
			at := z.Add(time.Duration(h.StartMS) * time.Millisecond).UTC()
			out[i].StartAt = &at
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"hits": out})
}
