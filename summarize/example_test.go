package summarize_test

import (
	"context"
	"fmt"
	"time"

	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/summarize"
	"github.com/greffier/greffier/summarize/summarizetest"
)

// A pipeline's assembly stage summarises the minutes it built: the
// Transcript is the document's turns.
func Example() {
	srv := summarizetest.NewServer(summarizetest.Options{})
	defer srv.Close()

	doc := minutes.Build(minutes.Input{
		MeetingID: "m1", Title: "Release", Language: "en", StartedAt: time.Unix(0, 0),
		Speakers: []minutes.Speaker{{ID: "ann", Name: "Ann Lee"}, {ID: "raj", Name: "Raj Patel"}},
		Pieces: []minutes.Piece{
			{Speaker: "ann", StartMS: 1_200, EndMS: 5_800, Text: "Should we ship the release this week?"},
			{Speaker: "raj", StartMS: 6_100, EndMS: 9_450, Text: "We decided to ship on Thursday."},
			{Speaker: "ann", StartMS: 9_900, EndMS: 14_020, Text: "Raj Patel will write the release notes by Wednesday."},
		},
	})

	tr := summarize.Transcript{Language: doc.Language, Title: doc.Title}
	for _, t := range doc.Turns {
		tr.Turns = append(tr.Turns, summarize.Turn{Speaker: t.Speaker, Name: t.Name,
			Start: summarize.Seconds(t.Start), End: summarize.Seconds(t.End), Text: t.Text})
	}

	s, err := summarize.New(summarize.Config{BaseURL: srv.BaseURL(), Model: "small-chat-model"})
	if err != nil {
		fmt.Println(err)
		return
	}
	sum, err := s.Summarize(context.Background(), tr)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range sum.Decisions {
		c := d.Citations[0]
		fmt.Printf("decision: %s [%s %d–%d ms]\n", d.Text, c.Speaker, c.Start.MS(), c.End.MS())
	}
	for _, a := range sum.ActionItems {
		c := a.Citations[0]
		fmt.Printf("action: %s, owner %s (%s), due %s [%d–%d ms]\n", a.Text, a.Owner, a.OwnerSpeaker, a.Due, c.Start.MS(), c.End.MS())
	}
	// Output:
	// decision: We decided to ship on Thursday. [raj 6100–9450 ms]
	// action: write the release notes, owner Raj Patel (raj), due Wednesday [9900–14020 ms]
}
