package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/summarize"
	"github.com/greffier/greffier/summarize/summarizetest"
)

// With a chat backend, minutes gain a summary whose every citation points
// at a real turn of the transcript, with that turn's real times.
func TestMinutesWithSummary(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{summary: &summarizetest.Options{}})
	mt, now := b.holdMeeting(t, map[string]string{"alice": "Alice", "bob": "Bob"}, holdOptions{})
	require.Equal(t, "ready", now.State)

	var doc minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+mt.id+"/minutes", nil, &doc))
	require.Equal(t, "transcript+summary", doc.Content)
	require.NotNil(t, doc.Summary, "summary error: %s", doc.SummaryError)
	require.Equal(t, "test-chat", doc.Summary.Model)
	require.NotEmpty(t, doc.Summary.Abstract.Citations)
	require.NotEmpty(t, doc.Summary.Topics)

	// The chat backend was shown the transcript with times, every turn.
	got := b.chat.Received()
	require.NotEmpty(t, got)
	require.Len(t, got[0].Turns, len(doc.Turns))
	for i, tr := range got[0].Turns {
		require.Equal(t, doc.Turns[i].Text, tr.Text)
		require.Equal(t, doc.Turns[i].Name, tr.Name)
	}
	points := append([]summarizeCitations{doc.Summary.Abstract.Citations}, citationsOf(doc)...)
	for _, cs := range points {
		for _, c := range cs {
			require.Less(t, c.Turn, len(doc.Turns))
			turn := doc.Turns[c.Turn]
			require.Equal(t, turn.Start.MS(), c.Start.MS())
			require.Equal(t, turn.End.MS(), c.End.MS())
			require.Equal(t, turn.Speaker, c.Speaker)
		}
	}

	var md string
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+mt.id+"/minutes.md", nil, &md))
	require.Contains(t, md, "## Summary")
	require.Contains(t, md, "### Topics")

	// A re-run that hears the same transcript keeps the version and its
	// summary: the model is not asked again for nothing.
	calls := b.chat.Requests()
	require.Equal(t, http.StatusAccepted, b.call(t, "POST", "/v1/meetings/"+mt.id+"/rerun", nil, nil))
	require.Eventually(t, func() bool {
		b.call(t, "GET", "/v1/meetings/"+mt.id, nil, &now)
		return now.State == "ready"
	}, 60*time.Second, 100*time.Millisecond)
	require.Equal(t, calls, b.chat.Requests())
	var again minutes.Document
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings/"+mt.id+"/minutes", nil, &again))
	require.Equal(t, 1, again.Version)
}

type summarizeCitations = []summarize.Citation

func citationsOf(doc minutes.Document) []summarizeCitations {
	var out []summarizeCitations
	for _, p := range doc.Summary.Topics {
		out = append(out, p.Citations)
	}
	for _, p := range doc.Summary.Decisions {
		out = append(out, p.Citations)
	}
	for _, a := range doc.Summary.ActionItems {
		out = append(out, a.Citations)
	}
	return out
}
