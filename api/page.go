package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/greffier/greffier/internal/store"
)

// cursor is where a page ends, handed to the client as an opaque string
// (base64url of this JSON) in next_cursor and taken back in ?cursor=. Lists
// ordered by time then id fill At and ID; lists by sequence or offset, N.
type cursor struct {
	At int64  `json:"t,omitempty"` // Unix milliseconds
	ID string `json:"id,omitempty"`
	N  int64  `json:"n,omitempty"`
}

func (c cursor) String() string {
	b, _ := json.Marshal(c) // a struct of strings and ints always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

func (c cursor) position() store.Position {
	if c.ID == "" {
		return store.Position{}
	}
	return store.Position{At: time.UnixMilli(c.At).UTC(), ID: c.ID}
}

func positionCursor(at time.Time, id string) cursor { return cursor{At: at.UnixMilli(), ID: id} }

// page is a list request's ?limit= and ?cursor=.
type page struct {
	limit int
	after cursor
}

// Page sizes: a list answers def items unless ?limit= asks for 1 to max.
const (
	defaultPage = 100
	maxPage     = 1000
)

// pageOf reads ?limit= (1 to max, default def) and ?cursor=, or answers
// a 400 and returns false.
func pageOf(w http.ResponseWriter, r *http.Request, def, max int) (page, bool) {
	p := page{limit: def}
	qs := r.URL.Query()
	if s := qs.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > max {
			writeError(w, http.StatusBadRequest, "bad_limit", fmt.Sprintf("limit must be 1 to %d", max))
			return page{}, false
		}
		p.limit = n
	}
	if s := qs.Get("cursor"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err == nil {
			err = json.Unmarshal(b, &p.after)
		}
		if err != nil || p.after.N < 0 {
			writeError(w, http.StatusBadRequest, "bad_cursor", "cursor must be a next_cursor this list returned")
			return page{}, false
		}
	}
	return p, true
}

// listJSON is every list's answer: the items under their name, and the
// cursor of the next page, absent on the last.
func listJSON(name string, items any, next *cursor) map[string]any {
	out := map[string]any{name: items}
	if next != nil {
		out["next_cursor"] = next.String()
	}
	return out
}

// trimPage cuts the one extra row a store was asked for (limit+1) off a
// page ordered by time then id, and makes the next page's cursor from the
// last row kept, if there was more.
func trimPage[T any](rows []T, limit int, pos func(T) (time.Time, string)) ([]T, *cursor) {
	if len(rows) <= limit {
		return rows, nil
	}
	rows = rows[:limit]
	c := positionCursor(pos(rows[limit-1]))
	return rows, &c
}

// slicePage cuts one page out of a list the store returns whole (a
// meeting's tracks or participants: bounded by one meeting), by offset.
func slicePage[T any](all []T, p page) ([]T, *cursor) {
	start := min(int(p.after.N), len(all))
	end := min(start+p.limit, len(all))
	if end < len(all) {
		return all[start:end], &cursor{N: int64(end)}
	}
	return all[start:end], nil
}
