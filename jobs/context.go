package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/riverqueue/river"

	"github.com/greffier/greffier/internal/store"
)

// A segment is transcribed with the end of its speaker's previous
// transcript as the prompt, so a speaker's segments are transcribed in
// order: a segment's job is enqueued only once its turn has come (every
// earlier segment of the same speaker final, every earlier track of theirs
// cut into segments), in the transaction that settled the last of them.
// The prompt then depends only on what is stored, never on which job ran
// first, so a re-run sends the prompts the live run sent. Live, a segment
// is at least MinSegment of speech, which the backend transcribes well
// before the next one closes: the order costs nothing. A re-run
// transcribes each speaker's segments one after the other (speakers in
// parallel). Shared-microphone tracks hold several voices, whose words
// must not prompt each other: their segments get no previous words and
// keep no order.

// promptContext bounds the previous words a prompt carries, in bytes: a
// sentence or two, what a Whisper-class model needs to continue a
// speaker's text, well inside its prompt window beside the vocabulary.
const promptContext = 200

// speakerOrder is one meeting's segments and tracks, to decide whose turn
// has come and what each segment is prompted with.
type speakerOrder struct {
	segs   []store.SpeechSegment // meeting-clock order, without words (SegmentOutlines)
	tracks map[string]store.Track
}

// readSpeakerOrder reads every segment of the meeting: what a segment's
// prompt and turn need.
func readSpeakerOrder(ctx context.Context, q store.Queries, meetingID string) (speakerOrder, error) {
	segs, err := q.SegmentOutlines(ctx, meetingID)
	if err != nil {
		return speakerOrder{}, err
	}
	return newSpeakerOrder(ctx, q, meetingID, segs)
}

// readPendingOrder reads only the segments still pending, which is all
// ready needs (a speaker waits on their earlier pending segments and
// tracks, never on a final segment), and stays a few rows however long
// the meeting has run.
func readPendingOrder(ctx context.Context, q store.Queries, meetingID string) (speakerOrder, error) {
	segs, err := q.PendingOutlines(ctx, meetingID)
	if err != nil {
		return speakerOrder{}, err
	}
	return newSpeakerOrder(ctx, q, meetingID, segs)
}

func newSpeakerOrder(ctx context.Context, q store.Queries, meetingID string, segs []store.SpeechSegment) (speakerOrder, error) {
	tracks, err := q.Tracks(ctx, meetingID)
	if err != nil {
		return speakerOrder{}, err
	}
	o := speakerOrder{segs: segs, tracks: make(map[string]store.Track, len(tracks))}
	for _, t := range tracks {
		o.tracks[t.ID] = t
	}
	return o, nil
}

// shared reports whether a track holds several voices (a shared microphone).
func (o speakerOrder) shared(trackID string) bool {
	return o.tracks[trackID].VoicesState != ""
}

// ordered reports whether segment s keeps its speaker's order: a
// one-voice track's.
func (o speakerOrder) ordered(s store.SpeechSegment) bool { return !o.shared(s.TrackID) }

// tracksSettled reports whether every other one-voice track of s's speaker
// that starts before s is cut into segments (or failed), so that no
// earlier segment of theirs is still to come.
func (o speakerOrder) tracksSettled(s store.SpeechSegment) bool {
	for _, t := range o.tracks {
		if t.ID == s.TrackID || t.Identity != s.Identity || t.VoicesState != "" || t.StartMS > s.StartMS {
			continue
		}
		if !t.SpeechDetected && t.State != store.TrackFailed {
			return false
		}
	}
	return true
}

// turnCame reports whether segment i may be transcribed now.
func (o speakerOrder) turnCame(i int) bool {
	s := o.segs[i]
	if !o.ordered(s) {
		return true
	}
	for _, e := range o.segs[:i] {
		if e.Identity == s.Identity && o.ordered(e) && e.Status == store.SegmentPending {
			return false
		}
	}
	return o.tracksSettled(s)
}

// ready lists the pending segments whose turn has come.
func (o speakerOrder) ready() []store.SpeechSegment {
	var out []store.SpeechSegment
	waiting := map[string]bool{} // speakers with an earlier pending segment
	for _, s := range o.segs {
		if s.Status != store.SegmentPending {
			continue
		}
		if !o.ordered(s) {
			out = append(out, s)
			continue
		}
		if !waiting[s.Identity] && o.tracksSettled(s) {
			out = append(out, s)
		}
		waiting[s.Identity] = true
	}
	return out
}

// previousWords returns the end of what segment i's speaker said before
// it, at most promptContext bytes starting at a word: the transcripts of
// their earlier segments, back to the first that failed (its words are
// unknown: what came before no longer leads into this one).
func (o speakerOrder) previousWords(i int) string {
	s := o.segs[i]
	if !o.ordered(s) {
		return ""
	}
	var parts []string
	n := 0
	for j := i - 1; j >= 0 && n < promptContext; j-- {
		e := o.segs[j]
		if e.Identity != s.Identity || !o.ordered(e) {
			continue
		}
		if e.Status != store.SegmentTranscribed {
			break
		}
		if t := strings.TrimSpace(e.Text); t != "" {
			parts = append(parts, t)
			n += len(t) + 1
		}
	}
	var b strings.Builder
	for j := len(parts) - 1; j >= 0; j-- {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(parts[j])
	}
	return tailWords(b.String(), promptContext)
}

// tailWords returns the end of text, at most max bytes, starting at a
// word: never half a word, which a model would take for one.
func tailWords(text string, max int) string {
	if len(text) <= max {
		return text
	}
	cut := len(text) - max
	// Inside a word (or a character): move to the next space.
	if r, _ := utf8.DecodeLastRuneInString(text[:cut]); !unicode.IsSpace(r) {
		i := strings.IndexFunc(text[cut:], unicode.IsSpace)
		if i < 0 {
			return ""
		}
		cut += i
	}
	return strings.TrimLeftFunc(text[cut:], unicode.IsSpace)
}

// index returns where the segment keyed (trackID, startMS) is, or -1.
func (o speakerOrder) index(trackID string, startMS int64) int {
	for i, s := range o.segs {
		if s.TrackID == trackID && s.StartMS == startMS {
			return i
		}
	}
	return -1
}

// vocabulary is what a segment's backend is told to expect: the names of
// the participants who had joined by the segment's end (a re-run, after
// everyone joined, must not tell an early segment more than the live run
// did), the host's glossary, and the meeting's title.
func vocabulary(m store.Meeting, parts []store.Participant, s store.SpeechSegment) []string {
	var out []string
	seen := map[string]bool{}
	add := func(term string) {
		term = strings.TrimSpace(term)
		if term != "" && !seen[strings.ToLower(term)] {
			seen[strings.ToLower(term)] = true
			out = append(out, term)
		}
	}
	for _, p := range parts {
		if m.StartedAt.IsZero() || p.JoinedAt.Sub(m.StartedAt).Milliseconds() <= s.EndMS {
			add(p.DisplayName)
		}
	}
	for _, g := range m.Glossary {
		add(g)
	}
	add(m.Title)
	return out
}

// enqueueReady enqueues the transcription of every segment of m whose
// turn has come. Callers hold the meeting's lock, so that a transcript
// saved and a segment stored at once see each other; jobs being unique,
// asking again for a queued one does nothing.
func (p *Pipeline) enqueueReady(ctx context.Context, tx *sql.Tx, q store.Queries, m store.Meeting) error {
	o, err := readPendingOrder(ctx, q, m.ID)
	if err != nil {
		return err
	}
	ready := o.ready()
	if len(ready) == 0 {
		return nil
	}
	jobs := make([]river.InsertManyParams, 0, len(ready))
	for _, s := range ready {
		jobs = append(jobs, river.InsertManyParams{Args: TranscribeArgs{MeetingID: s.MeetingID,
			TrackID: s.TrackID, StartMS: s.StartMS, DurationMS: s.EndMS - s.AudioStartMS, Run: m.Run}})
	}
	if _, err := p.client.InsertManyTx(ctx, tx, jobs); err != nil {
		return fmt.Errorf("enqueue transcription: %w", err)
	}
	return nil
}
