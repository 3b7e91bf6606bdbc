package jobs

import (
	"context"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/minutes"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// heardPrompt is one request as the double saw it: the words in its audio
// and the prompt it came with.
type heardPrompt struct{ heard, prompt string }

func heardPrompts(rs []transcribetest.Received) []heardPrompt {
	out := make([]heardPrompt, len(rs))
	for i, r := range rs {
		out[i] = heardPrompt{r.Heard, r.Prompt}
	}
	return out
}

// TestPromptsCarryTheSpeakersOwnPreviousWordsAndRerunsSendTheSame: alice
// speaks on two tracks (she rejoined), bob on one, at the same time as her.
// Each segment's request is prompted with the meeting's vocabulary (names
// of those who had joined, the glossary, the title) and then the end of
// what the same speaker said before it, across her tracks, never bob's
// words; a first segment has none. A re-run of the meeting sends exactly
// the same prompts.
func TestPromptsCarryTheSpeakersOwnPreviousWordsAndRerunsSendTheSame(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			b := setupJoinedAtOnce(t, d)
			ctx := context.Background()
			m, err := b.store.CreateMeeting(ctx, "Conseil municipal", "en")
			require.NoError(t, err)
			require.NoError(t, b.store.SetGlossary(ctx, m.ID, []string{"Greffier", "Kyutai"}))
			_, err = b.store.Join(ctx, m.ID, "alice", "Alice Martin")
			require.NoError(t, err)
			_, err = b.store.Join(ctx, m.ID, "bob", "Bob Durand")
			require.NoError(t, err)
			// Her first track is still being stored when her second is cut
			// into segments: those must wait for the first track's.
			first := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "alice", SSRC: 1, StartMS: 700}
			require.NoError(t, b.cat.CreateTrack(ctx, first))
			second := b.storeFixtureTrack(t, m.ID, "alice", 10_000)
			require.Eventually(t, func() bool {
				tr, err := b.store.Track(ctx, second.ID)
				require.NoError(t, err)
				return tr.SpeechDetected
			}, 30*time.Second, 20*time.Millisecond)
			require.Empty(t, b.double.Received(), "her second track waits for her first")
			b.finishFixtureTrack(t, first)
			b.storeFixtureTrack(t, m.ID, "bob", 700)
			_, err = b.p.EndMeeting(ctx, m.ID)
			require.NoError(t, err)
			waitFinished(t, b, m.ID)

			const vocab = "Alice Martin, Bob Durand, Greffier, Kyutai, Conseil municipal."
			a1, a2 := "alpha bravo charlie delta", "india juliett kilo"
			b1, b2 := "echo foxtrot golf hotel", "lima mike november"
			want := []heardPrompt{
				{a1, vocab},
				{a2, vocab + " " + a1},
				{a1, vocab + " " + a1 + " " + a2},
				{a2, vocab + " " + a1 + " " + a2 + " " + a1},
				{b1, vocab},
				{b2, vocab + " " + b1},
			}
			sent := heardPrompts(b.double.Received())
			require.ElementsMatch(t, want, sent)
			doc := latestMinutes(t, b, m.ID)
			require.True(t, doc.Complete)
			require.Len(t, doc.Turns, 6)

			_, err = b.p.Rerun(ctx, m.ID)
			require.NoError(t, err)
			waitFinished(t, b, m.ID)
			again := heardPrompts(b.double.Received())[len(sent):]
			require.ElementsMatch(t, sent, again, "a re-run sends the same prompts")
		})
	}
}

// waitFinished waits until the meeting's pipeline has finished its run.
func waitFinished(t *testing.T, b *testBundle, meetingID string) {
	t.Helper()
	require.Eventually(t, func() bool {
		cur, err := b.store.Meeting(context.Background(), meetingID)
		require.NoError(t, err)
		return cur.State.Finished()
	}, 60*time.Second, 50*time.Millisecond)
}

// TestAPromptNeverHoldsAnotherSpeakersWordsNorHalfAWord checks the
// order's rules on stored segments: the turn of a speaker's segment comes
// once every earlier one of theirs is final and their earlier tracks are
// cut; a shared microphone's segments (several voices) keep no order and
// get no previous words; a failed segment breaks the context.
func TestAPromptNeverHoldsAnotherSpeakersWordsNorHalfAWord(t *testing.T) {
	t.Parallel()
	seg := func(track, who string, start int64, st store.SegmentStatus, text string) store.SpeechSegment {
		return store.SpeechSegment{TrackID: track, Identity: who, StartMS: start, EndMS: start + 500, Status: st, Text: text}
	}
	o := speakerOrder{
		segs: []store.SpeechSegment{
			seg("a1", "alice", 0, store.SegmentTranscribed, "one two"),
			seg("b1", "bob", 100, store.SegmentTranscribed, "bob speaks"),
			seg("a1", "alice", 1000, store.SegmentTranscribed, "three four"),
			seg("r1", "room", 1100, store.SegmentTranscribed, "voices"),
			seg("a1", "alice", 2000, store.SegmentPending, ""),
			seg("r1", "room", 2100, store.SegmentPending, ""),
			seg("b1", "bob", 2200, store.SegmentFailed, ""),
			seg("b1", "bob", 3000, store.SegmentPending, ""),
			seg("a2", "alice", 4000, store.SegmentPending, ""),
			seg("r1", "room", 4100, store.SegmentPending, ""),
		},
		tracks: map[string]store.Track{
			"a1": {ID: "a1", Identity: "alice", StartMS: 0},
			"a2": {ID: "a2", Identity: "alice", StartMS: 3500, SpeechDetected: true},
			"b1": {ID: "b1", Identity: "bob", StartMS: 0, SpeechDetected: true},
			"r1": {ID: "r1", Identity: "room", StartMS: 0, VoicesState: store.VoicesPending},
		},
	}
	require.Equal(t, "one two three four", o.previousWords(4), "alice's own words only")
	require.Empty(t, o.previousWords(7), "bob's failed segment breaks his context")
	require.Empty(t, o.previousWords(5), "a shared microphone's voices do not prompt each other")
	require.Empty(t, o.previousWords(8), "her earlier segment is not transcribed yet")

	var ready []int64
	for _, s := range o.ready() {
		ready = append(ready, s.StartMS)
	}
	// alice@2000 is her earliest pending; alice@4000 waits for it; bob's
	// next follows his failed one; the room's go in any order.
	require.Equal(t, []int64{2000, 2100, 3000, 4100}, ready)

	// alice's first track still recording: her second track's segments wait.
	o.segs[4].Status, o.segs[4].Text = store.SegmentTranscribed, "five"
	require.False(t, o.turnCame(8), "her first track may still hold speech")
	tr := o.tracks["a1"]
	tr.SpeechDetected = true
	o.tracks["a1"] = tr
	require.True(t, o.turnCame(8))
	require.Equal(t, "one two three four five", o.previousWords(8), "across her tracks")

	long := strings.Repeat("word ", 60) + "last"
	got := tailWords(long, promptContext)
	require.LessOrEqual(t, len(got), promptContext)
	require.True(t, strings.HasPrefix(got, "word "), "starts at a word: %q", got)
	require.True(t, strings.HasSuffix(got, " last"))
	require.Equal(t, "cd ef", tailWords("ab cd ef", 6), "cut at a word boundary")
	require.Equal(t, "ef", tailWords("ab cd ef", 4), "never half a word")
	require.Equal(t, "", tailWords("abcdef", 3))
	require.Equal(t, "é ü", tailWords("aé é ü", 5), "on a character boundary")
}

// TestLivePromptsCarryTheSpeakersOwnPreviousWordsAndRerunsSendTheSame: the
// same as above on the live path. alice and bob speak at the same time;
// their packets reach the pipeline as the recorder hands them over, each
// with its sender's level, interleaved by time, and the segments are cut,
// stored and transcribed while the meeting goes on. Each request carries
// the vocabulary and then the end of the same speaker's own earlier words,
// never the other's; nothing is detected again from the stored files; a
// re-run (the batch path, over the stored files) sends the same prompts.
func TestLivePromptsCarryTheSpeakersOwnPreviousWordsAndRerunsSendTheSame(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			b := setupJoinedAtOnce(t, d)
			ctx := context.Background()
			m, err := b.store.CreateMeeting(ctx, "Conseil municipal", "en")
			require.NoError(t, err)
			require.NoError(t, b.store.SetGlossary(ctx, m.ID, []string{"Greffier"}))
			type live struct {
				track  store.Track
				lt     *LiveTrack
				ps     []audio.TimedPacket
				levels []int
				next   int
			}
			// Both join before they speak: the names of those who had joined
			// by a segment's end are its vocabulary.
			_, err = b.store.Join(ctx, m.ID, "alice", "Alice Martin")
			require.NoError(t, err)
			_, err = b.store.Join(ctx, m.ID, "bob", "Bob Durand")
			require.NoError(t, err)
			var speakers []*live
			for _, who := range []string{"alice", "bob"} {
				tr := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: who, SSRC: 1, StartMS: 700}
				require.NoError(t, b.cat.CreateTrack(ctx, tr))
				ps := webmPackets(t, fixtureWebM(t, who))
				speakers = append(speakers, &live{track: tr, lt: b.p.Listen(tr), ps: ps, levels: senderLevels(t, ps)})
			}
			// The recorder's order: packets as time goes, both speakers at once.
			for {
				var s *live
				for _, c := range speakers {
					if c.next < len(c.ps) && (s == nil || c.ps[c.next].MS < s.ps[s.next].MS) {
						s = c
					}
				}
				if s == nil {
					break
				}
				s.lt.Block(s.ps[s.next].MS, s.ps[s.next].Data, s.levels[s.next])
				s.next++
			}
			for _, s := range speakers {
				s.lt.Close(true)
				tr, err := b.store.Track(ctx, s.track.ID)
				require.NoError(t, err)
				require.True(t, tr.SpeechDetected, "%s: the live path found the speech", s.track.Identity)
				b.finishFixtureTrack(t, s.track)
			}
			_, err = b.p.EndMeeting(ctx, m.ID)
			require.NoError(t, err)
			waitFinished(t, b, m.ID)

			const vocab = "Alice Martin, Bob Durand, Greffier, Conseil municipal."
			a1, a2 := "alpha bravo charlie delta", "india juliett kilo"
			b1, b2 := "echo foxtrot golf hotel", "lima mike november"
			sent := heardPrompts(b.double.Received())
			require.ElementsMatch(t, []heardPrompt{
				{a1, vocab}, {a2, vocab + " " + a1},
				{b1, vocab}, {b2, vocab + " " + b1},
			}, sent, "each segment once, prompted with its own speaker's words")
			doc := latestMinutes(t, b, m.ID)
			require.True(t, doc.Complete)

			_, err = b.p.Rerun(ctx, m.ID)
			require.NoError(t, err)
			waitFinished(t, b, m.ID)
			again := heardPrompts(b.double.Received())[len(sent):]
			require.ElementsMatch(t, sent, again, "a re-run sends the prompts the live run sent")
			redone := latestMinutes(t, b, m.ID)
			require.Equal(t, turnTexts(doc), turnTexts(redone), "and so makes the same minutes")
		})
	}
}

// webmPackets reads the packets of a WebM track file, with their times.
func webmPackets(t *testing.T, path string) []audio.TimedPacket {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var ps []audio.TimedPacket
	_, err = audio.ReadWebMPackets(context.Background(), f, func(ms int64, p []byte) error {
		ps = append(ps, audio.TimedPacket{MS: ms, Data: append([]byte(nil), p...)})
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, ps)
	return ps
}

// turnTexts lists the minutes' turns as "speaker: text".
func turnTexts(doc minutes.Document) []string {
	var out []string
	for _, tu := range doc.Turns {
		out = append(out, tu.Speaker+": "+tu.Text)
	}
	return out
}

// slowFirstSpeech is a blob store whose first Put of a speech segment's
// audio waits, as an object store's slow answer would.
type slowFirstSpeech struct {
	blob.Store
	wait time.Duration
	// slowed is set by the first Put of speech, which alone waits (a
	// sync.Once would make the others wait too).
	slowed atomic.Bool
}

func (s *slowFirstSpeech) Put(ctx context.Context, key string, r io.Reader, size int64) (blob.Info, error) {
	if strings.Contains(key, "/speech/") && s.slowed.CompareAndSwap(false, true) {
		time.Sleep(s.wait)
	}
	return s.Store.Put(ctx, key, r, size)
}

// TestALiveTracksSegmentsAreStoredInTheOrderTheyWereCut: storing alice's
// first segment is slow (her first Put of speech audio waits 5 s, longer
// than her second takes to reach the backend); her second, cut right
// after, must not be stored, and so transcribed, before it: it would go
// without her first segment's words, and a re-run would prompt it
// otherwise.
func TestALiveTracksSegmentsAreStoredInTheOrderTheyWereCut(t *testing.T) {
	t.Parallel()
	b, start := newBundle(t, store.SQLite, bundleOptions{blobs: func(s blob.Store) blob.Store {
		return &slowFirstSpeech{Store: s, wait: 5 * time.Second}
	}})
	start()
	ctx := context.Background()
	m, err := b.store.CreateMeeting(ctx, "Conseil", "en")
	require.NoError(t, err)
	_, err = b.store.Join(ctx, m.ID, "alice", "Alice Martin")
	require.NoError(t, err)
	tr := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "alice", SSRC: 1, StartMS: 700}
	require.NoError(t, b.cat.CreateTrack(ctx, tr))
	ps := webmPackets(t, fixtureWebM(t, "alice"))
	levels := senderLevels(t, ps)
	lt := b.p.Listen(tr)
	for i, p := range ps { // as fast as it goes: her two segments close together
		lt.Block(p.MS, p.Data, levels[i])
	}
	lt.Close(true)
	b.finishFixtureTrack(t, tr)
	_, err = b.p.EndMeeting(ctx, m.ID)
	require.NoError(t, err)
	waitFinished(t, b, m.ID)

	const vocab = "Alice Martin, Conseil."
	require.Equal(t, []heardPrompt{
		{"alpha bravo charlie delta", vocab},
		{"india juliett kilo", vocab + " alpha bravo charlie delta"},
	}, heardPrompts(b.double.Received()), "in her order, the second prompted with the first")
}

// setupJoinedAtOnce is setup with a store clock that stands still: every
// participant joins at the meeting's first instant, so each segment's
// vocabulary names them all however slowly a loaded machine runs the
// joins (the names are those who had joined by the segment's end).
func setupJoinedAtOnce(t *testing.T, d store.Dialect) *testBundle {
	t.Helper()
	at := time.Now()
	b, start := newBundle(t, d, bundleOptions{now: func() time.Time { return at }})
	start()
	return b
}

// TestAVocabularyNamesThoseWhoHadJoinedByTheSegmentsEnd: a segment is told
// the names of the participants who had joined by its end (a re-run, once
// everyone joined, tells an early segment no more than the live run did),
// then the glossary and the title, each term once whatever its case.
func TestAVocabularyNamesThoseWhoHadJoinedByTheSegmentsEnd(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	m := store.Meeting{Title: "Conseil municipal", StartedAt: start, Glossary: []string{"Greffier", "alice martin", " "}}
	parts := []store.Participant{
		{Identity: "alice", DisplayName: "Alice Martin", JoinedAt: start},
		{Identity: "bob", DisplayName: "Bob Durand", JoinedAt: start.Add(5 * time.Second)},
	}
	early := store.SpeechSegment{StartMS: 1000, EndMS: 4999}
	late := store.SpeechSegment{StartMS: 4000, EndMS: 5000}
	require.Equal(t, []string{"Alice Martin", "Greffier", "Conseil municipal"}, vocabulary(m, parts, early))
	require.Equal(t, []string{"Alice Martin", "Bob Durand", "Greffier", "Conseil municipal"}, vocabulary(m, parts, late))
}
