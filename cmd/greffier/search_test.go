package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/client"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/sfu/sfutest"
)

// A word is found by search seconds after it was said, while the meeting
// is still live: transcript pieces are indexed as the live path stores
// them, not when the minutes are assembled.
func TestWordsAreSearchableSecondsAfterTheyAreSaid(t *testing.T) {
	t.Parallel()
	for name, scaleOut := range map[string]bool{"sqlite+disk": false, "postgres+s3": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOptions{scaleOut: scaleOut})
			ctx := context.Background()
			var m meetingAnswer
			require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{
				"title": "Conseil", "language": "en",
				"participants": []map[string]any{{"identity": "alice", "display_name": "Alice"}},
			}, &m))
			p, err := sfutest.Publish(ctx, sfutest.PublishOptions{WHIPURL: b.url + "/v1/whip", Token: m.Join[0].Token,
				OggPath: filepath.Join(fixtures, "alice.opus")})
			require.NoError(t, err)
			defer func() { _ = p.Close(ctx) }()

			// alice says "alpha bravo charlie delta" from 1.0 to 2.5 s of
			// her file; the segment closes after a 2 s pause. The query
			// differs in case and word form.
			type hits struct {
				Hits []struct {
					Speaker string
					Start   minutes.Seconds
					Snippet string
				}
			}
			var got hits
			require.Eventually(t, func() bool {
				require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/search?q=Deltas+BRAVO&meeting="+m.ID, nil, &got))
				return len(got.Hits) == 1
			}, 30*time.Second, 50*time.Millisecond, "the word was never found")
			foundAfter := time.Since(p.Started()) - 2500*time.Millisecond
			var now meetingAnswer
			require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+m.ID, nil, &now))
			require.Equal(t, "live", now.State, "found while the meeting runs")
			require.Equal(t, "alice", got.Hits[0].Speaker)
			require.Equal(t, "alpha bravo charlie delta", got.Hits[0].Snippet)
			t.Logf("found %.1f s after it was said", foundAfter.Seconds())
		})
	}
}

// TestSearchFromTheCommandLineFindsWhatTheAPIFinds: `greffier search`
// against a real server answers, for the same words and filters, exactly
// the hits of GET /v1/search (its --json is the server's page), prints one
// line a hit, and pages with the cursor the server gives.
func TestSearchFromTheCommandLineFindsWhatTheAPIFinds(t *testing.T) {
	t.Parallel()
	for name, scaleOut := range map[string]bool{"sqlite+disk": false, "postgres+s3": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOptions{scaleOut: scaleOut})
			ctx := context.Background()
			st := b.app.store
			var started time.Time // the first meeting's start, a date to filter by
			// What was said, stored as the pipeline stores it (transcribed
			// segments): the search path, not the speech, is under test.
			said := func(title, lang string, turns ...[2]string) string {
				var m meetingAnswer
				require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/meetings", map[string]any{"title": title, "language": lang}, &m))
				tracks := map[string]string{}
				for i, turn := range turns {
					who, text := turn[0], turn[1]
					if tracks[who] == "" {
						at, err := st.Join(ctx, m.ID, who, strings.ToUpper(who[:1])+who[1:])
						require.NoError(t, err)
						if started.IsZero() {
							started = at
						}
						tracks[who] = store.NewID("trk")
						require.NoError(t, st.CreateTrack(ctx, store.Track{ID: tracks[who], MeetingID: m.ID, Identity: who}))
					}
					start := int64(i) * 10_000
					require.NoError(t, st.UpsertSpeechSegment(ctx, store.SpeechSegment{MeetingID: m.ID, TrackID: tracks[who],
						Identity: who, StartMS: start, EndMS: start + 4_000, AudioKey: "k"}))
					require.NoError(t, st.SaveTranscript(ctx, tracks[who], start, text, "", nil))
				}
				return m.ID
			}
			conseil := said("Conseil", "fr",
				[2]string{"alice", "Les élections municipales auront lieu en mars."},
				[2]string{"bob", "Le budget des ÉLECTIONS est voté."},
				[2]string{"alice", "Une élection, un budget."})
			said("Committee", "en", [2]string{"carol", "The elections budget was voted yesterday."})

			env := cliEnv{"GREFFIER_URL": b.url, "GREFFIER_API_KEY": b.token}
			type page struct {
				Hits []struct {
					MeetingID string  `json:"meeting_id"`
					Speaker   string  `json:"speaker"`
					Start     float64 `json:"start"`
					Text      string  `json:"text"`
					Snippet   string  `json:"snippet"`
				} `json:"hits"`
				NextCursor string `json:"next_cursor"`
			}
			api := func(query url.Values) page {
				var p page
				require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/search?"+query.Encode(), nil, &p))
				return p
			}
			cli := func(args ...string) page {
				var p page
				out := env.must(t, append([]string{"search", "--json"}, args...)...)
				require.NoError(t, json.Unmarshal([]byte(out), &p), out)
				return p
			}
			day := started.UTC().Format(time.DateOnly)
			for _, c := range []struct {
				args  []string
				query url.Values
				hits  int
			}{
				{[]string{"élection"}, url.Values{"q": {"élection"}}, 4},
				{[]string{"ELECTIONS", "budget"}, url.Values{"q": {"ELECTIONS budget"}}, 3},
				{[]string{`"élections municipales"`}, url.Values{"q": {`"élections municipales"`}}, 1},
				{[]string{"munic*"}, url.Values{"q": {"munic*"}}, 1},
				{[]string{"budget", "--speaker", "alice"}, url.Values{"q": {"budget"}, "speaker": {"alice"}}, 1},
				{[]string{"budget", "--meeting", conseil}, url.Values{"q": {"budget"}, "meeting": {conseil}}, 2},
				{[]string{"budget", "--language", "en"}, url.Values{"q": {"budget"}, "language": {"en"}}, 1},
				{[]string{"budget", "--from", day}, url.Values{"q": {"budget"}, "from": {day}}, 3},
				{[]string{"budget", "--to", "2000-01-01"}, url.Values{"q": {"budget"}, "to": {"2000-01-01"}}, 0},
			} {
				want := api(c.query)
				require.Len(t, want.Hits, c.hits, "%v", c.args)
				require.Equal(t, want, cli(c.args...), "greffier search %v", c.args)
			}

			// Pages: the cursor printed on standard error continues the
			// search; every hit comes once, in the API's order.
			all := api(url.Values{"q": {"élection"}})
			var paged []string
			args := []string{"search", "élection", "--limit", "1"}
			for range 10 {
				out, errOut, err := env.runBoth(t, args...)
				require.NoError(t, err)
				lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
				require.Len(t, lines, 1, out)
				paged = append(paged, lines[0])
				cursor, more := strings.CutPrefix(strings.TrimSpace(errOut), "more results: run the same search with --cursor ")
				if !more {
					require.Empty(t, errOut)
					break
				}
				args = []string{"search", "élection", "--limit", "1", "--cursor", cursor}
			}
			require.Len(t, paged, len(all.Hits))
			for i, h := range all.Hits {
				require.Contains(t, paged[i], h.MeetingID+"  ")
				require.True(t, strings.HasSuffix(paged[i], ": "+h.Text), "%q is not hit %d (%s)", paged[i], i, h.Text)
			}

			// Bad input: the server's error, nothing printed as results.
			var apiErr *client.Error
			_, err := env.run(t, "search", "budget", "--language", "de")
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, http.StatusBadRequest, apiErr.Status)
			_, err = env.run(t, "search", "budget", "--cursor", "garbage")
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, http.StatusBadRequest, apiErr.Status)
			_, err = env.run(t, "search")
			require.ErrorContains(t, err, "usage: greffier search")
		})
	}
}
