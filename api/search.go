package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/minutes"
)

// maxSearchLen bounds q: a few words to find, not a document (SQLite
// refuses LIKE patterns past 50,000 bytes, and no one types that).
const maxSearchLen = 500

// maxSearchOffset bounds how deep search pages go: past it, narrow the
// search (more words, ?meeting=, ?speaker=) rather than page on.
const maxSearchOffset = 10000

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
	pg, ok := pageOf(w, r, 50, 500)
	if !ok {
		return
	}
	// The cursor is an offset into the hits: the store searches the
	// pages before this one again, which a few pages deep costs little.
	skip := int(min(pg.after.N, maxSearchOffset))
	hits, err := a.store.Search(r.Context(), store.SearchQuery{Terms: terms, MeetingID: qs.Get("meeting"),
		Identity: qs.Get("speaker"), Limit: skip + pg.limit + 1})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	hits = hits[min(skip, len(hits)):]
	var next *cursor
	if len(hits) > pg.limit && skip+pg.limit < maxSearchOffset {
		hits = hits[:pg.limit]
		next = &cursor{N: int64(skip + pg.limit)}
	} else if len(hits) > pg.limit {
		hits = hits[:pg.limit]
	}
	// A host sees hits in its own meetings only: the page may come out
	// shorter than the limit, and the cursor still goes on.
	p, _ := PrincipalFrom(r.Context())
	seen := map[string]bool{}
	out := make([]hitJSON, 0, len(hits))
	names := map[string]map[string]string{}
	starts := map[string]time.Time{}
	for _, h := range hits {
		if _, ok := names[h.MeetingID]; !ok {
			names[h.MeetingID] = map[string]string{}
			if ps, err := a.store.Participants(r.Context(), h.MeetingID); err == nil {
				for _, p := range ps {
					names[h.MeetingID][p.Identity] = p.DisplayName
				}
			}
			if m, err := a.store.Meeting(r.Context(), h.MeetingID); err == nil {
				starts[h.MeetingID] = m.StartedAt
				seen[h.MeetingID] = p.sees(m)
			}
		}
		if !seen[h.MeetingID] {
			continue
		}
		out = append(out, hitJSON{MeetingID: h.MeetingID, Title: h.Title, Speaker: h.Identity, Name: names[h.MeetingID][h.Identity],
			Start: minutes.Seconds(h.StartMS), End: minutes.Seconds(h.EndMS), Text: h.Text,
			Minutes: "/v1/meetings/" + h.MeetingID + "/minutes"})
		if z := starts[h.MeetingID]; !z.IsZero() {
			at := z.Add(time.Duration(h.StartMS) * time.Millisecond).UTC()
			out[len(out)-1].StartAt = &at
		}
	}
	writeJSON(w, http.StatusOK, listJSON("hits", out, next))
}
