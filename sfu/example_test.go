package sfu_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/sfu"
	"github.com/greffier/greffier/sfu/sfutest"
)

// The SFU wired as cmd/greffier does, then driven by sfutest peers: one
// participant publishes a file, another listens to the meeting.
func Example() {
	ctx := context.Background()
	signer, _ := token.NewSigner([]byte("a secret of at least thirty-two bytes!"))
	meetings := &memMeetings{meetings: map[string]*memMeeting{}}
	meetings.add("m1")
	recorder := &recTap{opened: make(chan *recTrack, 8)} // the recorder implements sfu.Tap

	s, err := sfu.New(sfu.Config{UDPAddr: "127.0.0.1:0"}, meetings, signer, recorder, slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	if err := s.Start(ctx); err != nil {
		panic(err)
	}
	defer s.Stop(ctx)
	mux := http.NewServeMux()
	mux.Handle("/v1/whip", s.WHIPHandler())
	mux.Handle("/v1/whip/", s.WHIPHandler())
	mux.Handle("/v1/whep", s.WHEPHandler())
	mux.Handle("/v1/whep/", s.WHEPHandler())
	go http.ListenAndServe("127.0.0.1:8080", mux)

	join := func(identity string, right token.Right) string {
		tok, _ := signer.Sign(token.Claims{MeetingID: "m1", Identity: identity, DisplayName: identity,
			Rights: []token.Right{right}, ExpiresAt: time.Now().Add(time.Hour)})
		return tok
	}
	bob, _ := sfutest.Listen(ctx, "http://127.0.0.1:8080/v1/whep", join("bob", token.RightListen))
	alice, _ := sfutest.Publish(ctx, sfutest.PublishOptions{
		WHIPURL: "http://127.0.0.1:8080/v1/whip", Token: join("alice", token.RightPublish),
		OggPath: "../testdata/meeting/alice.opus",
	})
	<-alice.Done()
	_ = alice.Close(ctx) // DELETE: the recorder's track is closed
	_ = bob.Close(ctx)
	// Ending the meeting closes what is left and refuses new joins.
	_ = s.EndMeeting(ctx, "m1")
}

// printObserver shows events on the meeting clock, as the owner stores them.
type printObserver struct{}

func (printObserver) Observe(ev sfu.Event) {
	fmt.Printf("%s %s at %d ms\n", ev.Identity, ev.Kind, ev.At.Sub(ev.ClockZero).Milliseconds())
}

// An Observer is set in Config; it gets joins, leaves and speaking turns
// with the meeting clock's zero, so each event is placed on that clock.
func ExampleObserver() {
	cfg := sfu.Config{Observer: printObserver{}}
	zero := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	// What the SFU calls when alice's level first reaches SpeakingLevel:
	cfg.Observer.Observe(sfu.Event{Kind: sfu.EventSpeakingStarted, MeetingID: "m1", Identity: "alice",
		At: zero.Add(1500 * time.Millisecond), ClockZero: zero})
	// Output: alice speaking_started at 1500 ms
}
