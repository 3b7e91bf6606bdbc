package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/minutes"
)

// eachDialect runs test on SQLite and on Postgres, each with a disk blob
// store, in parallel.
func eachDialect(t *testing.T, test func(t *testing.T, b *bundle)) {
	t.Helper()
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			test(t, setupOn(t, d, false))
		})
	}
}

// call sends an authenticated request with a JSON body (none if "").
func (b *bundle) call(t *testing.T, method, path, body string) answer {
	t.Helper()
	a := b.do(t, method, path, body, "Authorization", "Bearer "+apiToken, "Content-Type", "application/json")
	require.NoError(t, a.err)
	return a
}

// decode reads a's JSON body into v, once a answered status.
func decode[T any](t *testing.T, a answer, status int) T {
	t.Helper()
	require.Equal(t, status, a.status, "%s", a.body)
	var v T
	require.NoError(t, json.Unmarshal(a.body, &v), "%s", a.body)
	return v
}

type meetingAnswer struct {
	ID       string   `json:"id"`
	Title    string   `json:"title"`
	Language string   `json:"language"`
	State    string   `json:"state"`
	Captions bool     `json:"captions"`
	Webhook  string   `json:"webhook_url"`
	Glossary []string `json:"glossary"`
	Pipeline *struct {
		Tracks   int             `json:"tracks"`
		Failures []store.Failure `json:"failures"`
		Waiting  []store.Wait    `json:"waiting"`
	} `json:"pipeline"`
	Join []joinAnswer `json:"join"`
}

type joinAnswer struct {
	Identity    string        `json:"identity"`
	TokenID     string        `json:"token_id"`
	DisplayName string        `json:"display_name"`
	Rights      []token.Right `json:"rights"`
	Token       string        `json:"token"`
	ExpiresAt   time.Time     `json:"expires_at"`
}

func TestMeetingsAreCreatedListedReadAndPatched(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		a := b.call(t, "POST", "/v1/meetings", `{"title":"  Budget 2026 ","language":"fr-FR",
			"participants":[{"identity":"alice","display_name":"Alice A."},
			{"identity":"room","rights":["publish"],"ttl_seconds":600,"shared_microphone":true}]}`)
		created := decode[meetingAnswer](t, a, http.StatusCreated)
		require.Equal(t, "/v1/meetings/"+created.ID, a.header.Get("Location"))
		require.Equal(t, "Budget 2026", created.Title, "the title is trimmed")
		require.Equal(t, "fr-FR", created.Language)
		require.Equal(t, "created", created.State)
		require.Len(t, created.Join, 2)
		alice, room := created.Join[0], created.Join[1]
		require.Equal(t, "Alice A.", alice.DisplayName)
		require.Equal(t, []token.Right{token.RightPublish, token.RightListen}, alice.Rights, "both rights by default")
		require.Equal(t, "room", room.DisplayName, "the identity names who gave no name")
		require.Equal(t, []token.Right{token.RightPublish}, room.Rights)
		require.WithinDuration(t, time.Now().Add(10*time.Minute), room.ExpiresAt, time.Minute)
		for _, j := range created.Join {
			c, err := b.signer.Verify(j.Token)
			require.NoError(t, err)
			require.Equal(t, created.ID, c.MeetingID)
			require.Equal(t, j.Identity, c.Identity)
			require.Equal(t, j.TokenID, c.ID)
			revoked, err := b.store.JoinTokenRevoked(ctx, created.ID, j.Identity, j.TokenID)
			require.NoError(t, err)
			require.False(t, revoked, "the token is recorded, so that it can be revoked")
		}

		list := decode[struct{ Meetings []meetingAnswer }](t, b.call(t, "GET", "/v1/meetings", ""), http.StatusOK)
		ids := []string{}
		for _, m := range list.Meetings {
			ids = append(ids, m.ID)
		}
		require.ElementsMatch(t, []string{b.m.ID, created.ID}, ids)
		list = decode[struct{ Meetings []meetingAnswer }](t, b.call(t, "GET", "/v1/meetings?limit=1", ""), http.StatusOK)
		require.Len(t, list.Meetings, 1)

		got := decode[meetingAnswer](t, b.call(t, "GET", "/v1/meetings/"+created.ID, ""), http.StatusOK)
		require.Equal(t, created.ID, got.ID)
		require.Empty(t, got.Join, "tokens are shown once, when issued")
		require.NotNil(t, got.Pipeline)
		require.Zero(t, got.Pipeline.Tracks)
		require.NotNil(t, got.Pipeline.Failures, "an empty list, not null")
		require.NotNil(t, got.Pipeline.Waiting, "an empty list, not null")

		patched := decode[meetingAnswer](t, b.call(t, "PATCH", "/v1/meetings/"+created.ID,
			`{"webhook_url":"https://203.0.113.7/minutes","captions":false}`), http.StatusOK)
		require.Equal(t, "https://203.0.113.7/minutes", patched.Webhook)
		stored, err := b.store.Meeting(ctx, created.ID)
		require.NoError(t, err)
		require.Equal(t, "https://203.0.113.7/minutes", stored.WebhookURL)

		// Without a streaming backend there are no captions to turn on.
		a = b.call(t, "PATCH", "/v1/meetings/"+created.ID, `{"captions":true}`)
		require.Equal(t, http.StatusConflict, a.status)
		require.Equal(t, "captions_unavailable", errorCode(t, a))
		a = b.call(t, "PATCH", "/v1/meetings/"+created.ID, `{"webhook_url":"http://127.0.0.1:8080/hook"}`)
		require.Equal(t, http.StatusBadRequest, a.status)
		require.Equal(t, "bad_webhook", errorCode(t, a))
		stored, err = b.store.Meeting(ctx, created.ID)
		require.NoError(t, err)
		require.Equal(t, "https://203.0.113.7/minutes", stored.WebhookURL, "a refused webhook changes nothing")
	})
}

// TestAGlossaryIsSetOnCreationAndByPatchWithinBounds: the host's glossary
// (words the speech backend is told to expect) is kept with the meeting,
// replaced or cleared by PATCH; a glossary too long, a term too long, empty
// or holding a control character is refused with a 400 that says which,
// and changes nothing.
func TestAGlossaryIsSetOnCreationAndByPatchWithinBounds(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		created := decode[meetingAnswer](t, b.call(t, "POST", "/v1/meetings",
			`{"title":"Conseil","glossary":[" Greffier ","Kyutai","Mme Lefèvre-Dupont"]}`), http.StatusCreated)
		require.Equal(t, []string{"Greffier", "Kyutai", "Mme Lefèvre-Dupont"}, created.Glossary, "terms are trimmed")
		stored, err := b.store.Meeting(ctx, created.ID)
		require.NoError(t, err)
		require.Equal(t, created.Glossary, stored.Glossary)

		path := "/v1/meetings/" + created.ID
		patched := decode[meetingAnswer](t, b.call(t, "PATCH", path, `{"glossary":["pyannote"]}`), http.StatusOK)
		require.Equal(t, []string{"pyannote"}, patched.Glossary)
		got := decode[meetingAnswer](t, b.call(t, "GET", path, ""), http.StatusOK)
		require.Equal(t, []string{"pyannote"}, got.Glossary)

		many := make([]string, 51)
		for i := range many {
			many[i] = fmt.Sprintf("%q", fmt.Sprint("term", i))
		}
		for _, bad := range []struct{ body, says string }{
			{`{"glossary":[` + strings.Join(many, ",") + `]}`, "51 terms, over 50"},
			{`{"glossary":["` + strings.Repeat("x", 65) + `"]}`, "term 1 is 65 characters long, over 64"},
			{`{"glossary":["ok","  "]}`, "term 2 is empty"},
			{`{"glossary":["a\nb"]}`, "term 1 holds a control character"},
		} {
			for _, call := range []struct{ method, path string }{{"PATCH", path}, {"POST", "/v1/meetings"}} {
				a := b.call(t, call.method, call.path, bad.body)
				require.Equal(t, http.StatusBadRequest, a.status, "%s", a.body)
				require.Equal(t, "bad_glossary", errorCode(t, a))
				require.Contains(t, string(a.body), bad.says)
			}
		}
		stored, err = b.store.Meeting(ctx, created.ID)
		require.NoError(t, err)
		require.Equal(t, []string{"pyannote"}, stored.Glossary, "a refused glossary changes nothing")

		cleared := decode[meetingAnswer](t, b.call(t, "PATCH", path, `{"glossary":[]}`), http.StatusOK)
		require.Empty(t, cleared.Glossary)
		require.NotNil(t, cleared.Glossary, "an empty list, not null")
	})
}

func TestMeetingsEndAndRerunThroughThePipeline(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		a := b.call(t, "POST", "/v1/meetings/"+b.m.ID+"/rerun", "")
		require.Equal(t, http.StatusConflict, a.status, "a meeting not ended cannot be re-run")
		require.Equal(t, "not_ended", errorCode(t, a))

		ended := decode[meetingAnswer](t, b.call(t, "POST", "/v1/meetings/"+b.m.ID+"/end", ""), http.StatusAccepted)
		require.Equal(t, "ended", ended.State)
		a = b.call(t, "POST", "/v1/meetings/"+b.m.ID+"/end", "")
		require.Equal(t, http.StatusConflict, a.status)
		require.Equal(t, "already_ended", errorCode(t, a))
		a = b.call(t, "POST", "/v1/meetings/"+b.m.ID+"/tokens", `{"identity":"late"}`)
		require.Equal(t, http.StatusConflict, a.status, "nobody joins an ended meeting")
		require.Equal(t, "meeting_ended", errorCode(t, a))

		_, err := b.store.Transition(ctx, b.m.ID, store.MeetingReady, "")
		require.NoError(t, err)
		rerun := decode[meetingAnswer](t, b.call(t, "POST", "/v1/meetings/"+b.m.ID+"/rerun", ""), http.StatusAccepted)
		require.Equal(t, "ended", rerun.State)
	})
}

func TestTokensAreIssuedAndRevoked(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		path := "/v1/meetings/" + b.m.ID
		first := decode[joinAnswer](t, b.call(t, "POST", path+"/tokens", `{"identity":"alice"}`), http.StatusCreated)
		second := decode[joinAnswer](t, b.call(t, "POST", path+"/tokens", `{"identity":"alice","display_name":"Alice"}`), http.StatusCreated)
		bob := decode[joinAnswer](t, b.call(t, "POST", path+"/tokens", `{"identity":"bob","rights":["listen"]}`), http.StatusCreated)
		require.NotEqual(t, first.TokenID, second.TokenID)
		require.Equal(t, []token.Right{token.RightListen}, bob.Rights)
		revoked := func(j joinAnswer) bool {
			r, err := b.store.JoinTokenRevoked(ctx, b.m.ID, j.Identity, j.TokenID)
			require.NoError(t, err)
			return r
		}

		// One token: that token alone, and the sessions it opened.
		a := b.call(t, "DELETE", path+"/tokens/"+first.TokenID, "")
		require.Equal(t, http.StatusNoContent, a.status, "%s", a.body)
		require.True(t, revoked(first))
		require.False(t, revoked(second))
		require.Equal(t, []disconnect{{b.m.ID, "alice", first.TokenID}}, b.media.disconnects())
		a = b.call(t, "DELETE", path+"/tokens/tok_unknown", "")
		require.Equal(t, http.StatusNotFound, a.status)
		require.Equal(t, "not_found", errorCode(t, a))

		// A participant: every token issued so far and every session.
		out := decode[struct {
			Identity       string `json:"identity"`
			TokensRevoked  int    `json:"tokens_revoked"`
			SessionsClosed int    `json:"sessions_closed"`
		}](t, b.call(t, "POST", path+"/participants/alice/revoke", ""), http.StatusOK)
		require.Equal(t, "alice", out.Identity)
		require.Equal(t, 1, out.TokensRevoked, "the first was revoked already")
		require.Equal(t, b.media.closed, out.SessionsClosed)
		require.True(t, revoked(second))
		require.False(t, revoked(bob))
		require.Equal(t, disconnect{b.m.ID, "alice", ""}, b.media.disconnects()[1])

		// Not banned: a token issued afterwards works.
		third := decode[joinAnswer](t, b.call(t, "POST", path+"/tokens", `{"identity":"alice"}`), http.StatusCreated)
		require.False(t, revoked(third))
	})
}

// minutesDoc is minutes in which alice says text, as the pipeline would
// have saved them.
func minutesDoc(t *testing.T, m store.Meeting, version int, text string) []byte {
	t.Helper()
	doc := minutes.Document{Schema: minutes.Schema, MeetingID: m.ID, Title: m.Title, Version: version,
		Speakers: []minutes.Speaker{{ID: "alice", Name: "Alice"}},
		Turns:    []minutes.Turn{{Speaker: "alice", Name: "Alice", Start: 1500, End: 3200, Text: text, Words: []minutes.Word{}}},
		Missing:  []minutes.Gap{}, Complete: true, Content: "transcript"}
	body, err := json.Marshal(doc)
	require.NoError(t, err)
	return body
}

func TestMinutesRenderTheirVersionsWithNamesAsTheyAreNow(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		path := "/v1/meetings/" + b.m.ID
		a := b.call(t, "GET", path+"/minutes", "")
		require.Equal(t, http.StatusNotFound, a.status)
		require.Equal(t, "no_minutes", errorCode(t, a))

		_, err := b.store.Join(ctx, b.m.ID, "alice", "Alice")
		require.NoError(t, err)
		_, err = b.store.Transition(ctx, b.m.ID, store.MeetingEnded, "")
		require.NoError(t, err)
		_, _, err = b.store.SaveMinutes(ctx, b.m.ID, "d1", minutesDoc(t, b.m, 1, "Bonjour à tous."))
		require.NoError(t, err)
		_, _, err = b.store.SaveMinutes(ctx, b.m.ID, "d2", minutesDoc(t, b.m, 2, "Bonjour à toutes et à tous."))
		require.NoError(t, err)

		renamed := decode[map[string]string](t, b.call(t, "PATCH", path+"/participants/alice",
			`{"display_name":"  Alice Martin "}`), http.StatusOK)
		require.Equal(t, map[string]string{"identity": "alice", "display_name": "Alice Martin"}, renamed)
		parts := decode[struct {
			Participants []struct {
				Identity    string `json:"identity"`
				DisplayName string `json:"display_name"`
			}
		}](t, b.call(t, "GET", path+"/participants", ""), http.StatusOK)
		require.Len(t, parts.Participants, 1)
		require.Equal(t, "Alice Martin", parts.Participants[0].DisplayName)
		a = b.call(t, "PATCH", path+"/participants/nobody", `{"display_name":"X"}`)
		require.Equal(t, http.StatusNotFound, a.status)
		require.Equal(t, "not_found", errorCode(t, a))

		doc := decode[minutes.Document](t, b.call(t, "GET", path+"/minutes", ""), http.StatusOK)
		require.Equal(t, 2, doc.Version, "the latest version by default")
		require.Equal(t, "Alice Martin", doc.Turns[0].Name, "renamed after the meeting, shown at once")
		doc = decode[minutes.Document](t, b.call(t, "GET", path+"/minutes?version=1", ""), http.StatusOK)
		require.Equal(t, "Bonjour à tous.", doc.Turns[0].Text)
		require.Equal(t, "Alice Martin", doc.Turns[0].Name)

		for _, c := range []struct {
			ext, contentType, want string
		}{
			{"json", "application/json", `"name": "Alice Martin"`},
			{"vtt", "text/vtt; charset=utf-8", "00:00:01.500 --> 00:00:03.200\n<v Alice Martin>Bonjour à toutes et à tous.</v>"},
			{"srt", "application/x-subrip; charset=utf-8", "1\n00:00:01,500 --> 00:00:03,200\nAlice Martin: Bonjour à toutes et à tous."},
			{"md", "text/markdown; charset=utf-8", "Alice Martin**: Bonjour à toutes et à tous."},
			{"txt", "text/plain; charset=utf-8", "Alice Martin"},
		} {
			byExt := b.call(t, "GET", path+"/minutes."+c.ext, "")
			require.Equal(t, http.StatusOK, byExt.status, c.ext)
			require.Equal(t, c.contentType, byExt.header.Get("Content-Type"), c.ext)
			require.Equal(t, "2", byExt.header.Get("X-Minutes-Version"), c.ext)
			require.Contains(t, string(byExt.body), c.want, c.ext)
			byQuery := b.call(t, "GET", path+"/minutes?format="+c.ext, "")
			require.Equal(t, string(byExt.body), string(byQuery.body), "?format= is the extension's twin: %s", c.ext)
			old := b.call(t, "GET", path+"/minutes."+c.ext+"?version=1", "")
			require.Equal(t, "1", old.header.Get("X-Minutes-Version"), c.ext)
		}

		for _, c := range []struct{ query, code string }{
			{"?version=3", "no_minutes"},
			{"?version=0", "bad_version"},
			{"?version=two", "bad_version"},
			{"?format=doc", "bad_format"},
		} {
			a := b.call(t, "GET", path+"/minutes"+c.query, "")
			require.Equal(t, c.code, errorCode(t, a), c.query)
		}
	})
}

func TestEventsAreListedOnTheMeetingClock(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		zero, err := b.store.Join(ctx, b.m.ID, "alice", "Alice")
		require.NoError(t, err)
		for _, e := range []store.Event{
			{MeetingID: b.m.ID, AtMS: 0, Kind: "joined", Identity: "alice"},
			{MeetingID: b.m.ID, AtMS: 1200, Kind: "speaking_started", Identity: "alice"},
			{MeetingID: b.m.ID, AtMS: 4800, Kind: "speaking_stopped", Identity: "alice"},
		} {
			require.NoError(t, b.store.AddEvent(ctx, e))
		}
		type event struct {
			Seq      int64     `json:"seq"`
			Kind     string    `json:"kind"`
			Identity string    `json:"identity"`
			AtMS     int64     `json:"at_ms"`
			At       time.Time `json:"at"`
		}
		got := decode[struct{ Events []event }](t, b.call(t, "GET", "/v1/meetings/"+b.m.ID+"/events", ""), http.StatusOK)
		require.Len(t, got.Events, 3)
		for i, kind := range []string{"joined", "speaking_started", "speaking_stopped"} {
			e := got.Events[i]
			require.Equal(t, kind, e.Kind)
			require.Equal(t, "alice", e.Identity)
			require.True(t, zero.Add(time.Duration(e.AtMS)*time.Millisecond).Equal(e.At), "at is the meeting clock's zero plus at_ms")
		}
		require.Less(t, got.Events[0].Seq, got.Events[1].Seq)
		require.Equal(t, int64(1200), got.Events[1].AtMS)
	})
}

// storeSpeech stores a transcribed stretch of identity's speech.
func (b *bundle) storeSpeech(t *testing.T, identity string, startMS, endMS int64, text string) {
	t.Helper()
	ctx := context.Background()
	tr := b.storeTrack(t, identity, []byte("webm of "+identity))
	require.NoError(t, b.store.UpsertSpeechSegment(ctx, store.SpeechSegment{MeetingID: b.m.ID, TrackID: tr.ID, Identity: identity,
		StartMS: startMS, EndMS: endMS, AudioStartMS: startMS, AudioKey: layout.Track(b.m.ID, tr.ID) + ".seg"}))
	require.NoError(t, b.store.SaveTranscript(ctx, tr.ID, startMS, text, "fr", nil))
}

func TestSearchFindsWhatWasSaidWithWhoAndWhen(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		zero, err := b.store.Join(ctx, b.m.ID, "alice", "Alice")
		require.NoError(t, err)
		_, err = b.store.Join(ctx, b.m.ID, "bob", "Bob")
		require.NoError(t, err)
		b.storeSpeech(t, "alice", 1000, 4000, "Le budget de la culture augmente.")
		b.storeSpeech(t, "bob", 5000, 9000, "Le budget des sports baisse.")

		type hit struct {
			MeetingID string          `json:"meeting_id"`
			Title     string          `json:"title"`
			Speaker   string          `json:"speaker"`
			Name      string          `json:"name"`
			Start     minutes.Seconds `json:"start"`
			End       minutes.Seconds `json:"end"`
			StartAt   *time.Time      `json:"start_at"`
			Text      string          `json:"text"`
			Minutes   string          `json:"minutes"`
		}
		search := func(query string) []hit {
			return decode[struct{ Hits []hit }](t, b.call(t, "GET", "/v1/search?"+query, ""), http.StatusOK).Hits
		}
		hits := search("q=" + url.QueryEscape("CULTURE budget"))
		require.Len(t, hits, 1, "every word, in any case")
		h := hits[0]
		require.Equal(t, hit{MeetingID: b.m.ID, Title: "Conseil", Speaker: "alice", Name: "Alice", Start: 1000, End: 4000,
			StartAt: h.StartAt, Text: "Le budget de la culture augmente.", Minutes: "/v1/meetings/" + b.m.ID + "/minutes"}, h)
		require.NotNil(t, h.StartAt)
		require.True(t, zero.Add(time.Second).Equal(*h.StartAt))

		require.Len(t, search("q=budget"), 2)
		require.Len(t, search("q=budget&limit=1"), 1)
		only := search("q=budget&speaker=bob")
		require.Len(t, only, 1)
		require.Equal(t, "Bob", only[0].Name)
		require.Empty(t, search("q=budget&meeting=mtg_other"))
		require.Empty(t, search("q=budget+santé"))

		for _, query := range []string{"", "q=", "q=" + strings.Repeat("mot+", 21), "q=" + strings.Repeat("a", 501)} {
			a := b.call(t, "GET", "/v1/search?"+query, "")
			require.Equal(t, http.StatusBadRequest, a.status, query)
			require.Equal(t, "bad_query", errorCode(t, a), query)
		}
	})
}

func TestMinutesOfAStretchKeepTheTurnsThatOverlapIt(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		path := "/v1/meetings/" + b.m.ID + "/minutes"
		_, err := b.store.Join(ctx, b.m.ID, "alice", "Alice")
		require.NoError(t, err)
		_, _, err = b.store.SaveMinutes(ctx, b.m.ID, "d1", minutesDoc(t, b.m, 1, "Bonjour à tous.")) // 1.5 to 3.2 s
		require.NoError(t, err)
		for query, turns := range map[string]int{"": 1, "?from=0&to=1.5": 0, "?from=3.2": 0, "?from=3.1": 1, "?to=1.6": 1,
			"?from=2&to=2.5": 1} {
			doc := decode[minutes.Document](t, b.call(t, "GET", path+query, ""), http.StatusOK)
			require.Len(t, doc.Turns, turns, query)
			require.Len(t, doc.Speakers, turns, query)
		}
		md := b.call(t, "GET", path+".md?from=5", "")
		require.Equal(t, http.StatusOK, md.status)
		require.NotContains(t, string(md.body), "Bonjour")
		for _, query := range []string{"?from=abc", "?to=-1"} {
			a := b.call(t, "GET", path+query, "")
			require.Equal(t, http.StatusBadRequest, a.status, query)
			require.Equal(t, "bad_range", errorCode(t, a), query)
		}
	})
}

func TestSearchAnswersWithSnippetsLinksAndPages(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		_, err := b.store.Join(ctx, b.m.ID, "élise", "Élise")
		require.NoError(t, err)
		b.storeSpeech(t, "élise", 1500, 4250, "Les élections municipales, enfin !")
		b.storeSpeech(t, "élise", 5000, 9000, "Une élection de plus.")
		type page struct {
			Hits []struct {
				Start      minutes.Seconds `json:"start"`
				EndAt      *time.Time      `json:"end_at"`
				Language   string          `json:"language"`
				Score      float64         `json:"score"`
				Snippet    string          `json:"snippet"`
				Highlights [][2]int        `json:"highlights"`
				Links      struct {
					Minutes      string `json:"minutes"`
					Audio        string `json:"audio"`
					SpeakerAudio string `json:"speaker_audio"`
				} `json:"links"`
			} `json:"hits"`
			NextCursor string `json:"next_cursor"`
		}
		p := decode[page](t, b.call(t, "GET", "/v1/search?q="+url.QueryEscape(`"ÉLECTIONS municipales"`), ""), http.StatusOK)
		require.Len(t, p.Hits, 1)
		h := p.Hits[0]
		require.Equal(t, "Les élections municipales, enfin !", h.Snippet)
		require.Equal(t, [][2]int{{4, 13}, {14, 25}}, h.Highlights)
		require.Equal(t, "fr", h.Language)
		require.Positive(t, h.Score)
		require.NotNil(t, h.EndAt)
		base := "/v1/meetings/" + b.m.ID
		require.Equal(t, base+"/minutes?from=1.500&to=4.250", h.Links.Minutes)
		require.Equal(t, base+"/mix.flac#t=1.500,4.250", h.Links.Audio)
		require.Equal(t, base+"/speakers/%C3%A9lise.flac#t=1.500,4.250", h.Links.SpeakerAudio)
		require.Empty(t, p.NextCursor)

		first := decode[page](t, b.call(t, "GET", "/v1/search?q=election&limit=1", ""), http.StatusOK)
		require.Len(t, first.Hits, 1)
		require.NotEmpty(t, first.NextCursor)
		second := decode[page](t, b.call(t, "GET", "/v1/search?q=election&limit=1&cursor="+first.NextCursor, ""), http.StatusOK)
		require.Len(t, second.Hits, 1)
		require.Empty(t, second.NextCursor)
		require.NotEqual(t, first.Hits[0].Start, second.Hits[0].Start)

		require.Len(t, decode[page](t, b.call(t, "GET", "/v1/search?q=election&language=fr&from=2000-01-01", ""), http.StatusOK).Hits, 2)
		require.Empty(t, decode[page](t, b.call(t, "GET", "/v1/search?q=election&language=en", ""), http.StatusOK).Hits)
		require.Empty(t, decode[page](t, b.call(t, "GET", "/v1/search?q=election&to=2000-01-01T00:00:00Z", ""), http.StatusOK).Hits)

		for query, code := range map[string]string{
			"q=election&cursor=" + first.NextCursor + "x": "bad_cursor",
			"q=elections&cursor=" + first.NextCursor:      "bad_cursor",
			"q=election&language=de":                      "bad_query",
			"q=election&from=yesterday":                   "bad_query",
			"q=e*":                                        "bad_query",
			"q=" + url.QueryEscape(`" , "`):               "bad_query",
			"q=election&limit=0":                          "bad_limit",
		} {
			a := b.call(t, "GET", "/v1/search?"+query, "")
			require.Equal(t, http.StatusBadRequest, a.status, query)
			require.Equal(t, code, errorCode(t, a), query)
		}
	})
}

func TestTracksAreListedWithTheirDownloads(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		stored := b.storeTrack(t, "alice", []byte("alice's webm"))
		recording := store.Track{ID: store.NewID("trk"), MeetingID: b.m.ID, Identity: "bob", SSRC: 2, StartMS: 400}
		recording.BlobKey = layout.Track(b.m.ID, recording.ID)
		require.NoError(t, b.store.CreateTrack(ctx, recording))

		type track struct {
			ID         string `json:"id"`
			Identity   string `json:"identity"`
			State      string `json:"state"`
			Size       int64  `json:"size"`
			SHA256     string `json:"sha256"`
			URL        string `json:"url"`
			SpeakerURL string `json:"speaker_url"`
		}
		list := decode[struct {
			Tracks []track `json:"tracks"`
			Timing string  `json:"timing"`
		}](t, b.call(t, "GET", "/v1/meetings/"+b.m.ID+"/tracks", ""), http.StatusOK)
		require.NotEmpty(t, list.Timing)
		byID := map[string]track{}
		for _, tr := range list.Tracks {
			byID[tr.ID] = tr
		}
		require.Len(t, byID, 2)
		require.Equal(t, track{ID: stored.ID, Identity: "alice", State: "stored", Size: stored.Size, SHA256: stored.SHA256,
			URL:        "/v1/meetings/" + b.m.ID + "/tracks/" + stored.ID + ".webm",
			SpeakerURL: "/v1/meetings/" + b.m.ID + "/speakers/alice.flac"}, byID[stored.ID])
		require.Equal(t, track{ID: recording.ID, Identity: "bob", State: "recording"}, byID[recording.ID],
			"nothing to download while it records")

		a := b.call(t, "GET", "/v1/meetings/"+b.m.ID+"/tracks/"+recording.ID+".webm", "")
		require.Equal(t, http.StatusConflict, a.status)
		require.Equal(t, "not_stored", errorCode(t, a))
		a = b.call(t, "GET", "/v1/meetings/"+b.m.ID+"/tracks/"+stored.ID+".webm", "")
		require.Equal(t, http.StatusOK, a.status)
		require.Equal(t, "alice's webm", string(a.body))
	})
}

// TestErrorsAnswerInTheJSONBody: whatever goes wrong, the answer is the
// JSON error body with a code to branch on.
func TestErrorsAnswerInTheJSONBody(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		meeting := "/v1/meetings/" + b.m.ID
		auth := []string{"Authorization", "Bearer " + apiToken}
		for _, c := range []struct {
			name, method, path, body string
			header                   []string
			status                   int
			code                     string
		}{
			{"no token", "GET", "/v1/meetings", "", nil, http.StatusUnauthorized, "unauthorized"},
			{"wrong token", "GET", meeting, "", []string{"Authorization", "Bearer nope"}, http.StatusUnauthorized, "unauthorized"},
			{"token of another scheme", "GET", meeting, "", []string{"Authorization", "Basic " + apiToken}, http.StatusUnauthorized, "unauthorized"},
			{"unknown meeting", "GET", "/v1/meetings/mtg_unknown", "", auth, http.StatusNotFound, "not_found"},
			{"unknown meeting's tokens", "POST", "/v1/meetings/mtg_unknown/tokens", `{"identity":"a"}`, auth, http.StatusNotFound, "not_found"},
			{"unknown route", "GET", "/v1/nothing", "", auth, http.StatusNotFound, "not_found"},
			{"unknown sub-resource", "GET", meeting + "/nothing", "", auth, http.StatusNotFound, "not_found"},
			{"method not allowed", "PUT", "/v1/meetings", "{}", auth, http.StatusMethodNotAllowed, "method_not_allowed"},
			{"method not allowed on a meeting", "PUT", meeting, "", auth, http.StatusMethodNotAllowed, "method_not_allowed"},
			{"malformed JSON", "POST", "/v1/meetings", `{"title":`, auth, http.StatusBadRequest, "bad_json"},
			{"unknown field", "POST", "/v1/meetings", `{"titel":"x"}`, auth, http.StatusBadRequest, "bad_json"},
			{"two JSON values", "POST", "/v1/meetings", `{}{}`, auth, http.StatusBadRequest, "bad_json"},
			{"not JSON", "POST", "/v1/meetings", `title=x`, append([]string{"Content-Type", "text/plain"}, auth...), http.StatusUnsupportedMediaType, "unsupported_media_type"},
			{"bad language", "POST", "/v1/meetings", `{"language":"french!"}`, auth, http.StatusBadRequest, "bad_language"},
			{"title with a control character", "POST", "/v1/meetings", `{"title":"a\u0007b"}`, auth, http.StatusBadRequest, "bad_title"},
			{"participant without identity", "POST", "/v1/meetings", `{"participants":[{}]}`, auth, http.StatusBadRequest, "bad_participant"},
			{"unknown right", "POST", meeting + "/tokens", `{"identity":"a","rights":["admin"]}`, auth, http.StatusBadRequest, "bad_participant"},
			{"token lifetime too long", "POST", meeting + "/tokens", `{"identity":"a","ttl_seconds":604801}`, auth, http.StatusBadRequest, "bad_participant"},
			{"private webhook", "POST", "/v1/meetings", `{"webhook_url":"http://10.0.0.1/hook"}`, auth, http.StatusBadRequest, "bad_webhook"},
			{"limit out of range", "GET", "/v1/meetings?limit=0", "", auth, http.StatusBadRequest, "bad_limit"},
			{"limit not a number", "GET", "/v1/meetings?limit=ten", "", auth, http.StatusBadRequest, "bad_limit"},
			{"control character in the path", "GET", "/v1/meetings/mtg%01x", "", auth, http.StatusBadRequest, "bad_id"},
			{"invalid UTF-8 in the query", "GET", "/v1/search?q=%ff", "", auth, http.StatusBadRequest, "bad_query"},
			{"empty display name", "PATCH", meeting + "/participants/alice", `{"display_name":"  "}`, auth, http.StatusBadRequest, "bad_name"},
			{"unknown participant", "PATCH", meeting + "/participants/nobody", `{"display_name":"N"}`, auth, http.StatusNotFound, "not_found"},
			{"re-run of a meeting not ended", "POST", meeting + "/rerun", "", auth, http.StatusConflict, "not_ended"},
			{"minutes not made yet", "GET", meeting + "/minutes.md", "", auth, http.StatusNotFound, "no_minutes"},
			{"archive not built yet", "GET", meeting + "/mix.flac", "", auth, http.StatusNotFound, "no_archive"},
			{"track of no meeting", "GET", meeting + "/tracks/trk_unknown.webm", "", auth, http.StatusNotFound, "not_found"},
		} {
			t.Run(c.name, func(t *testing.T) {
				a := b.do(t, c.method, c.path, c.body, c.header...)
				require.Equal(t, c.status, a.status, "%s", a.body)
				require.Equal(t, "application/json", a.header.Get("Content-Type"))
				require.Equal(t, c.code, errorCode(t, a))
				if c.status == http.StatusUnauthorized {
					require.Equal(t, `Bearer realm="greffier"`, a.header.Get("WWW-Authenticate"))
				}
				if c.status == http.StatusMethodNotAllowed {
					require.NotEmpty(t, a.header.Get("Allow"))
				}
			})
		}
		// The refused requests changed nothing.
		ms, err := b.store.Meetings(context.Background(), 10)
		require.NoError(t, err)
		require.Len(t, ms, 1)
		require.Equal(t, store.MeetingCreated, ms[0].State)
	})
}
