package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
)

type keyAnswer struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Role        string     `json:"role"`
	AllMeetings bool       `json:"all_meetings"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	Key         string     `json:"key"`
}

func TestKeysAreShownOnceStoredHashedAndRevoked(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		expires := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
		a := b.call(t, "POST", "/v1/keys", fmt.Sprintf(`{"name":" CI agent ","role":"agent","expires_at":%q}`, expires.Format(time.RFC3339)))
		k := decode[keyAnswer](t, a, http.StatusCreated)
		require.Equal(t, "/v1/keys/"+k.ID, a.header.Get("Location"))
		require.Equal(t, "CI agent", k.Name)
		require.Equal(t, "agent", k.Role)
		require.Regexp(t, regexp.MustCompile(`^grf_[A-Za-z0-9_-]{43}$`), k.Key)
		require.NotNil(t, k.ExpiresAt)
		require.True(t, expires.Equal(*k.ExpiresAt))
		require.Nil(t, k.LastUsedAt, "never used yet")
		require.Contains(t, string(a.body), `"last_used_at": null`, "every field is present")

		// Stored as its SHA-256 only.
		sum := sha256.Sum256([]byte(k.Key))
		stored, err := b.store.APIKeyByHash(ctx, hex.EncodeToString(sum[:]))
		require.NoError(t, err)
		require.Equal(t, k.ID, stored.ID)
		var n int
		require.NoError(t, b.store.DB().QueryRowContext(ctx, `SELECT count(*) FROM api_keys WHERE hash = $1 OR name = $1`, k.Key).Scan(&n))
		require.Zero(t, n, "the key itself is nowhere in the table")

		// Used: the last use is recorded, at most once a minute.
		require.Equal(t, http.StatusOK, b.as(t, k.Key, "GET", "/v1/meetings", "").status)
		stored, err = b.store.APIKeyByHash(ctx, stored.Hash)
		require.NoError(t, err)
		require.False(t, stored.LastUsedAt.IsZero())
		first := stored.LastUsedAt
		require.Equal(t, http.StatusOK, b.as(t, k.Key, "GET", "/v1/meetings", "").status)
		stored, err = b.store.APIKeyByHash(ctx, stored.Hash)
		require.NoError(t, err)
		require.True(t, first.Equal(stored.LastUsedAt), "a second use within the minute writes nothing")

		list := decode[struct {
			Keys       []keyAnswer `json:"keys"`
			NextCursor string      `json:"next_cursor"`
		}](t, b.call(t, "GET", "/v1/keys", ""), http.StatusOK)
		require.Len(t, list.Keys, 1)
		require.Empty(t, list.Keys[0].Key, "shown once: never listed")
		require.NotContains(t, string(b.call(t, "GET", "/v1/keys", "").body), k.Key)
		require.NotNil(t, list.Keys[0].LastUsedAt)
		require.Empty(t, list.NextCursor)

		require.Equal(t, http.StatusNoContent, b.call(t, "DELETE", "/v1/keys/"+k.ID, "").status)
		a = b.as(t, k.Key, "GET", "/v1/meetings", "")
		require.Equal(t, http.StatusUnauthorized, a.status)
		require.Contains(t, string(a.body), "revoked")
		a = b.call(t, "DELETE", "/v1/keys/"+k.ID, "")
		require.Equal(t, http.StatusNotFound, a.status, "revoked once")
		require.Empty(t, decode[struct{ Keys []keyAnswer }](t, b.call(t, "GET", "/v1/keys", ""), http.StatusOK).Keys)
		a = b.call(t, "DELETE", "/v1/keys/key_bootstrap", "")
		require.Equal(t, http.StatusConflict, a.status)
		require.Equal(t, "bootstrap_key", errorCode(t, a))

		// An expired key says so.
		expired := "grf_expired"
		_, err = b.store.CreateAPIKey(ctx, store.APIKey{ID: store.NewID("key"), Name: "old", Role: "admin",
			Hash: sha([]byte(expired)), ExpiresAt: time.Now().Add(-time.Second)})
		require.NoError(t, err)
		a = b.as(t, expired, "GET", "/v1/meetings", "")
		require.Equal(t, http.StatusUnauthorized, a.status)
		require.Contains(t, string(a.body), "expired")

		for body, code := range map[string]string{
			`{"role":"agent"}`:                                                "bad_name",
			`{"name":"x","role":"root"}`:                                      "bad_role",
			`{"name":"x","role":"agent","all_meetings":true}`:                 "bad_all_meetings",
			`{"name":"x","role":"agent","expires_at":"2020-01-01T00:00:00Z"}`: "bad_expires_at",
			`{"name":"x","role":"agent","expires_at":"tomorrow"}`:             "bad_json",
		} {
			a := b.call(t, "POST", "/v1/keys", body)
			require.Equal(t, http.StatusBadRequest, a.status, body)
			require.Equal(t, code, errorCode(t, a), body)
		}
	})
}

func TestAHostSeesOnlyTheMeetingsItCreated(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		_, alice := b.newKey(t, "alice", "host", false)
		_, bob := b.newKey(t, "bob", "host", false)
		_, boss := b.newKey(t, "boss", "host", true)
		_, agent := b.newKey(t, "agent", "agent", false)
		mine := decode[meetingAnswer](t, b.as(t, alice, "POST", "/v1/meetings", `{"title":"Alice's"}`), http.StatusCreated)
		stored, err := b.store.Meeting(ctx, mine.ID)
		require.NoError(t, err)
		require.NotEmpty(t, stored.CreatedBy, "the creating key is stored on the meeting")

		ids := func(key string) []string {
			var out []string
			for _, m := range decode[struct{ Meetings []meetingAnswer }](t, b.as(t, key, "GET", "/v1/meetings", ""), http.StatusOK).Meetings {
				out = append(out, m.ID)
			}
			return out
		}
		require.Equal(t, []string{mine.ID}, ids(alice))
		require.Empty(t, ids(bob))
		require.ElementsMatch(t, []string{mine.ID, b.m.ID}, ids(boss))
		require.ElementsMatch(t, []string{mine.ID, b.m.ID}, ids(agent))

		a := b.as(t, bob, "POST", "/v1/meetings/"+mine.ID+"/end", "")
		require.Equal(t, http.StatusNotFound, a.status, "another host's meeting does not exist for bob")
		require.Equal(t, store.MeetingCreated, must(b.store.Meeting(ctx, mine.ID)).State, "and bob changed nothing")
		require.Equal(t, http.StatusAccepted, b.as(t, boss, "POST", "/v1/meetings/"+mine.ID+"/end", "").status)

		// Search: bob finds nothing of other meetings; alice's own, yes.
		_, err = b.store.Join(ctx, b.m.ID, "carol", "Carol")
		require.NoError(t, err)
		b.storeSpeech(t, "carol", 0, 2000, "Le budget est voté.")
		hits := func(key string) int {
			return len(decode[struct{ Hits []any }](t, b.as(t, key, "GET", "/v1/search?q=budget", ""), http.StatusOK).Hits)
		}
		require.Equal(t, 0, hits(bob))
		require.Equal(t, 1, hits(boss))
		require.Equal(t, 1, hits(agent))
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

type auditAnswer struct {
	Entries []struct {
		KeyID     string    `json:"key_id"`
		KeyName   string    `json:"key_name"`
		Method    string    `json:"method"`
		Route     string    `json:"route"`
		MeetingID string    `json:"meeting_id"`
		Status    int       `json:"status"`
		At        time.Time `json:"at"`
	} `json:"entries"`
	NextCursor string `json:"next_cursor"`
}

func TestTheAuditLogSaysWhoDidWhatToWhichMeeting(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		hostID, host := b.newKey(t, "Hélène (host)", "host", false)
		_, agent := b.newKey(t, "indexer", "agent", false)
		_, archivist := b.newKey(t, "archives", "archivist", false)
		m := decode[meetingAnswer](t, b.as(t, host, "POST", "/v1/meetings", `{"title":"Audited"}`), http.StatusCreated)
		require.Equal(t, http.StatusForbidden, b.as(t, agent, "POST", "/v1/meetings/"+m.ID+"/end", "").status)
		require.Equal(t, http.StatusAccepted, b.as(t, host, "POST", "/v1/meetings/"+m.ID+"/end", "").status)
		require.Equal(t, http.StatusNotFound, b.as(t, archivist, "GET", "/v1/meetings/"+m.ID+"/mix.flac", "").status)
		require.Equal(t, http.StatusOK, b.as(t, agent, "GET", "/v1/meetings", "").status, "reads are not audited")

		got := decode[auditAnswer](t, b.call(t, "GET", "/v1/audit?meeting="+m.ID, ""), http.StatusOK)
		type row struct {
			name, method, route string
			status              int
		}
		var rows []row
		for _, e := range got.Entries {
			require.Equal(t, m.ID, e.MeetingID)
			require.WithinDuration(t, time.Now(), e.At, time.Minute)
			rows = append(rows, row{e.KeyName, e.Method, e.Route, e.Status})
		}
		require.ElementsMatch(t, []row{
			{"Hélène (host)", "POST", "/v1/meetings", 201},
			{"indexer", "POST", "/v1/meetings/{id}/end", 403},
			{"Hélène (host)", "POST", "/v1/meetings/{id}/end", 202},
			{"archives", "GET", "/v1/meetings/{id}/mix.flac", 404},
		}, rows)
		for _, e := range got.Entries {
			if e.KeyName == "Hélène (host)" {
				require.Equal(t, hostID, e.KeyID)
			}
		}

		// All of it, key creations included, a page at a time.
		var seen int
		cursor := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, 20)
			page := decode[auditAnswer](t, b.call(t, "GET", "/v1/audit?limit=2&cursor="+url.QueryEscape(cursor), ""), http.StatusOK)
			require.LessOrEqual(t, len(page.Entries), 2)
			seen += len(page.Entries)
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		require.Equal(t, 3+4, seen, "three keys created, four calls on the meeting")
		require.Equal(t, http.StatusForbidden, b.as(t, host, "GET", "/v1/audit", "").status)
	})
}

func TestListsArePagedWithCursorsAndFiltered(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		start := time.Now().Add(-time.Second)
		for i := range 5 {
			_, err := b.store.CreateMeeting(ctx, fmt.Sprintf("M%d", i), "")
			require.NoError(t, err)
		}
		ended := decode[meetingAnswer](t, b.call(t, "POST", "/v1/meetings", `{"title":"Ended"}`), http.StatusCreated)
		require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+ended.ID+"/end", "").status)

		type meetingsPage struct {
			Meetings   []meetingAnswer `json:"meetings"`
			NextCursor string          `json:"next_cursor"`
		}
		all := func(query string) (ids []string, pages int) {
			cursor := ""
			for {
				p := decode[meetingsPage](t, b.call(t, "GET", "/v1/meetings?limit=2&"+query+"&cursor="+url.QueryEscape(cursor), ""), http.StatusOK)
				require.LessOrEqual(t, len(p.Meetings), 2)
				for _, m := range p.Meetings {
					ids = append(ids, m.ID)
				}
				pages++
				if p.NextCursor == "" {
					return ids, pages
				}
				cursor = p.NextCursor
			}
		}
		ids, pages := all("")
		require.Len(t, ids, 7, "the bundle's meeting, five, and the ended one")
		require.Equal(t, 4, pages)
		seen := map[string]bool{}
		for _, id := range ids {
			require.False(t, seen[id], "no meeting on two pages")
			seen[id] = true
		}
		ids, _ = all("state=ended")
		require.Equal(t, []string{ended.ID}, ids)
		ids, _ = all("created_after=" + url.QueryEscape(start.UTC().Format(time.RFC3339)))
		require.Len(t, ids, 7)
		ids, _ = all("created_before=" + url.QueryEscape(start.UTC().Format(time.RFC3339)))
		require.Empty(t, ids)
		for query, code := range map[string]string{"state=over": "bad_state", "created_after=yesterday": "bad_created_after",
			"cursor=%21%21": "bad_cursor", "limit=1001": "bad_limit"} {
			a := b.call(t, "GET", "/v1/meetings?"+query, "")
			require.Equal(t, http.StatusBadRequest, a.status, query)
			require.Equal(t, code, errorCode(t, a), query)
		}

		// Events, participants, tracks, search: the same cursors.
		_, err := b.store.Join(ctx, b.m.ID, "alice", "Alice")
		require.NoError(t, err)
		_, err = b.store.Join(ctx, b.m.ID, "bob", "Bob")
		require.NoError(t, err)
		for i := range 5 {
			require.NoError(t, b.store.AddEvent(ctx, store.Event{MeetingID: b.m.ID, AtMS: int64(i) * 100, Kind: "speaking_started", Identity: "alice"}))
		}
		b.storeSpeech(t, "alice", 0, 1000, "budget un")
		b.storeSpeech(t, "bob", 2000, 3000, "budget deux")
		b.storeSpeech(t, "alice", 4000, 5000, "budget trois")
		for _, c := range []struct {
			path, field string
			want        int
		}{
			{"/v1/meetings/" + b.m.ID + "/events", "events", 5},
			{"/v1/meetings/" + b.m.ID + "/participants", "participants", 2},
			{"/v1/meetings/" + b.m.ID + "/tracks", "tracks", 3},
			{"/v1/search?q=budget", "hits", 3},
		} {
			var items []string
			cursor := ""
			for pages := 0; ; pages++ {
				require.Less(t, pages, 10, c.path)
				sep := "?"
				if strings.Contains(c.path, "?") {
					sep = "&"
				}
				p := decode[map[string]any](t, b.call(t, "GET", c.path+sep+"limit=1&cursor="+url.QueryEscape(cursor), ""), http.StatusOK)
				list, _ := p[c.field].([]any)
				require.Len(t, list, 1, c.path)
				items = append(items, fmt.Sprint(list[0]))
				next, _ := p["next_cursor"].(string)
				if next == "" {
					break
				}
				cursor = next
			}
			require.Len(t, items, c.want, c.path)
			uniq := map[string]bool{}
			for _, it := range items {
				uniq[it] = true
			}
			require.Len(t, uniq, c.want, "%s: every item once", c.path)
		}
	})
}

func TestMinutesAnswerNotModifiedToTheirETag(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		_, err := b.store.Join(ctx, b.m.ID, "alice", "Alice")
		require.NoError(t, err)
		_, err = b.store.Transition(ctx, b.m.ID, store.MeetingEnded, "")
		require.NoError(t, err)
		_, _, err = b.store.SaveMinutes(ctx, b.m.ID, "d1", minutesDoc(t, b.m, 1, "Bonjour."))
		require.NoError(t, err)
		path := "/v1/meetings/" + b.m.ID + "/minutes"
		for _, ext := range []string{"", ".json", ".vtt", ".srt", ".md", ".txt"} {
			first := b.call(t, "GET", path+ext, "")
			require.Equal(t, http.StatusOK, first.status)
			etag := first.header.Get("ETag")
			require.Regexp(t, `^"[0-9a-f]{32}"$`, etag, ext)
			again := b.do(t, "GET", path+ext, "", "Authorization", "Bearer "+apiToken, "If-None-Match", etag)
			require.Equal(t, http.StatusNotModified, again.status, ext)
			require.Empty(t, again.body)
			require.Equal(t, etag, again.header.Get("ETag"))
			other := b.do(t, "GET", path+ext, "", "Authorization", "Bearer "+apiToken, "If-None-Match", `"stale"`)
			require.Equal(t, http.StatusOK, other.status, ext)
		}
		before := b.call(t, "GET", path+".md", "").header.Get("ETag")
		require.Equal(t, http.StatusOK, b.call(t, "PATCH", "/v1/meetings/"+b.m.ID+"/participants/alice", `{"display_name":"Alice M."}`).status)
		after := b.do(t, "GET", path+".md", "", "Authorization", "Bearer "+apiToken, "If-None-Match", before)
		require.Equal(t, http.StatusOK, after.status, "a rename changes the rendering, so its tag")
		require.NotEqual(t, before, after.header.Get("ETag"))
	})
}

func TestJoinLinksOpenTheJoinPageWithTheToken(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		created := decode[struct {
			ID   string `json:"id"`
			Join []struct {
				Token   string `json:"token"`
				JoinURL string `json:"join_url"`
			} `json:"join"`
		}](t, b.call(t, "POST", "/v1/meetings", `{"participants":[{"identity":"alice"}]}`), http.StatusCreated)
		require.Len(t, created.Join, 1)
		j := created.Join[0]
		u, err := url.Parse(j.JoinURL)
		require.NoError(t, err)
		require.Equal(t, "https://greffier.example.org/base/join/", u.Scheme+"://"+u.Host+u.Path)
		frag, err := url.ParseQuery(u.Fragment)
		require.NoError(t, err)
		require.Equal(t, j.Token, frag.Get("token"), "the token rides in the fragment, kept out of server logs")

		more := decode[struct {
			Token   string `json:"token"`
			JoinURL string `json:"join_url"`
		}](t, b.call(t, "POST", "/v1/meetings/"+created.ID+"/tokens", `{"identity":"bob"}`), http.StatusCreated)
		require.Equal(t, "https://greffier.example.org/base/join/#token="+url.QueryEscape(more.Token), more.JoinURL)
	})
}
