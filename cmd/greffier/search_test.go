package main

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
