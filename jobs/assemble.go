package jobs

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/greffier/greffier/diarize"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/minutes"
)

// AssembleArgs asks for a meeting's minutes to be assembled from its
// transcript pieces.
type AssembleArgs struct {
	MeetingID string `json:"meeting_id"`
	// Run keeps a re-run's assembly apart from the previous run's, which
	// River may still count as running for a moment after it finished.
	Run int `json:"run"`
}

func (AssembleArgs) Kind() string { return "assemble_minutes" }

// InsertOpts collapses the assemblies that several finishing stages ask
// for at once into one.
func (AssembleArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
		rivertype.JobStateRunning, rivertype.JobStateScheduled,
	}}}
}

type assembleWorker struct {
	river.WorkerDefaults[AssembleArgs]
	p *Pipeline
}

func (w *assembleWorker) Timeout(*river.Job[AssembleArgs]) time.Duration { return 2 * time.Minute }

func (w *assembleWorker) Work(ctx context.Context, job *river.Job[AssembleArgs]) error {
	p := w.p
	if stale, err := p.stale(ctx, job.Args.MeetingID, job.Args.Run); stale || err != nil {
		return err
	}
	err := p.assemble(ctx, job.Args.MeetingID)
	if err == nil || !lastAttempt(job.JobRow) {
		return err
	}
	dctx, cancel := detached(ctx)
	defer cancel()
	var failed store.Meeting
	to, event := finalState(false, false)
	terr := p.store.InTx(dctx, func(tx *sql.Tx, q store.Queries) error {
		var terr error
		if failed, terr = q.Transition(dctx, job.Args.MeetingID, to, "assembling minutes: "+err.Error()); terr != nil {
			return terr
		}
		return p.notify(dctx, tx, failed, event, 0)
	})
	if terr == nil {
		p.announce(failed, event, 0)
	}
	return errors.Join(err, terr)
}

func (p *Pipeline) assemble(ctx context.Context, meetingID string) error {
	m, err := p.store.Meeting(ctx, meetingID)
	if err != nil {
		return fmt.Errorf("assemble minutes: %w", err)
	}
	in, err := p.minutesInput(ctx, m)
	if err != nil {
		return err
	}
	doc := minutes.Build(in)
	digest := doc.Digest()
	latest, err := p.store.LatestMinutes(ctx, meetingID)
	switch {
	case err == nil && latest.Digest == digest:
		// Assembled before (a retried job, or a re-run that heard the
		// same): keep that version and its summary.
	case err == nil || errors.Is(err, store.ErrNotFound):
		if p.sum != nil && len(doc.Turns) > 0 {
			doc.SetSummary(p.sum.Summarize(ctx, doc.Transcript()))
			if doc.SummaryError != "" {
				p.log.Warn("minutes without summary", "meeting", meetingID, "err", doc.SummaryError)
			}
		}
	default:
		return err
	}
	var (
		saved     store.MinutesVersion
		finished  store.Meeting
		announced string
	)
	err = p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		announced = ""
		latest, err := q.LatestMinutes(ctx, meetingID)
		switch {
		case err == nil && latest.Digest == digest:
			saved = latest
		case err == nil || errors.Is(err, store.ErrNotFound):
			doc.Version = latest.Version + 1
			body, err := json.Marshal(doc)
			if err != nil {
				return fmt.Errorf("encode minutes: %w", err)
			}
			if saved, _, err = q.SaveMinutes(ctx, meetingID, digest, body); err != nil {
				return err
			}
		default:
			return err
		}
		cur, err := q.Meeting(ctx, meetingID)
		if err != nil {
			return err
		}
		if cur.State != store.MeetingEnded {
			return nil
		}
		to, event := finalState(true, doc.Complete)
		done, err := q.Transition(ctx, meetingID, to, "")
		if err != nil {
			return err
		}
		finished, announced = done, event
		return p.notify(ctx, tx, done, event, saved.Version)
	})
	if err != nil {
		return fmt.Errorf("save minutes of %s: %w", meetingID, err)
	}
	if announced != "" {
		p.announce(finished, announced, saved.Version)
	}
	// The archive copy: same key for the same version, so a retry
	// rewrites it rather than adding one.
	key := layout.Minutes(meetingID, saved.Version)
	if _, err := p.blobs.Put(ctx, key, bytes.NewReader(saved.Body), int64(len(saved.Body))); err != nil {
		return fmt.Errorf("archive minutes %s: %w", key, err)
	}
	return nil
}

// finalState is the state an ended meeting's pipeline leaves it in, and
// the webhook event that says so, the one place this is decided:
//
//   - ready: minutes were made and hold every recorded second;
//   - incomplete: minutes were made but miss some stretch of speech,
//     listed in them, even when that is all of it (every track failed to
//     record, every segment failed): the minutes say whose, when and why;
//   - failed: no minutes could be made at all (assembly gave up).
func finalState(made, complete bool) (store.MeetingState, string) {
	switch {
	case !made:
		return store.MeetingFailed, EventMeetingFailed
	case complete:
		return store.MeetingReady, EventMinutesReady
	default:
		return store.MeetingIncomplete, EventMinutesIncomplete
	}
}

func (p *Pipeline) minutesInput(ctx context.Context, m store.Meeting) (minutes.Input, error) {
	in := minutes.Input{MeetingID: m.ID, Title: m.Title, Language: m.Language, StartedAt: m.StartedAt}
	parts, err := p.store.Participants(ctx, m.ID)
	if err != nil {
		return in, err
	}
	for _, pa := range parts {
		in.Speakers = append(in.Speakers, minutes.Speaker{ID: pa.Identity, Name: pa.DisplayName})
	}
	tracks, err := p.store.Tracks(ctx, m.ID)
	if err != nil {
		return in, err
	}
	names := map[string]string{}
	for _, s := range in.Speakers {
		names[s.ID] = s.Name
	}
	voiced := map[string]store.Track{} // shared-microphone tracks told apart
	byID := make(map[string]store.Track, len(tracks))
	for _, t := range tracks {
		byID[t.ID] = t
		if t.VoicesState == store.VoicesDone && len(t.Voices) > 0 {
			voiced[t.ID] = t
			vn := voiceNames(t, names[t.Identity])
			for _, label := range slices.Sorted(maps.Keys(vn)) {
				id := voiceID(t.Identity, label)
				if !slices.ContainsFunc(in.Speakers, func(s minutes.Speaker) bool { return s.ID == id }) {
					in.Speakers = append(in.Speakers, minutes.Speaker{ID: id, Name: vn[label]})
				}
			}
		}
		switch {
		case t.State == store.TrackFailed:
			end := t.StartMS + t.DurationMS
			if t.DurationMS == 0 && !m.EndedAt.IsZero() && !m.StartedAt.IsZero() {
				// Refused before a packet was kept: nothing of this
				// participant was recorded from then on.
				end = max(end, m.EndedAt.Sub(m.StartedAt).Milliseconds())
			}
			in.Pieces = append(in.Pieces, minutes.Piece{Speaker: t.Identity, StartMS: t.StartMS,
				EndMS: end, Failure: "recording: " + t.Failure})
		case t.GapMS > 0:
			// A crash cut the track: what it heard after its last spooled
			// second (or checkpoint) was lost.
			in.Pieces = append(in.Pieces, minutes.Piece{Speaker: t.Identity, StartMS: t.StartMS + t.DurationMS,
				EndMS:   t.StartMS + t.DurationMS + t.GapMS,
				Failure: "recording: the server stopped while recording; this stretch was not saved"})
		}
		switch {
		case t.State == store.TrackFailed:
		case t.DetectFailure != "":
			in.Pieces = append(in.Pieces, minutes.Piece{Speaker: t.Identity, StartMS: t.StartMS,
				EndMS: t.StartMS + t.DurationMS, Failure: t.DetectFailure})
		}
	}
	gaps, err := p.store.Gaps(ctx, m.ID)
	if err != nil {
		return in, err
	}
	for _, g := range gaps {
		if t, ok := byID[g.TrackID]; ok && t.State == store.TrackFailed {
			continue // the whole track is listed as missing already
		}
		in.Pieces = append(in.Pieces, minutes.Piece{Speaker: g.Identity, StartMS: g.StartMS, EndMS: g.EndMS,
			Failure: "recording: " + g.Reason})
	}
	segs, err := p.store.SpeechSegments(ctx, m.ID)
	if err != nil {
		return in, err
	}
	for _, s := range segs {
		piece := minutes.Piece{Speaker: s.Identity, StartMS: s.StartMS, EndMS: s.EndMS, Text: s.Text}
		switch s.Status {
		case store.SegmentFailed:
			piece.Failure = s.Failure
		case store.SegmentPending:
			piece.Failure = "not transcribed"
		}
		for _, w := range s.Words {
			piece.Words = append(piece.Words, minutes.Word{Word: w.Text, Start: minutes.Seconds(w.StartMS), End: minutes.Seconds(w.EndMS)})
		}
		if t, ok := voiced[s.TrackID]; ok && piece.Failure == "" {
			in.Pieces = append(in.Pieces, splitByVoice(piece, t)...)
			continue
		}
		in.Pieces = append(in.Pieces, piece)
	}
	controls, err := p.store.Controls(ctx, m.ID)
	if err != nil {
		return in, err
	}
	in.NotRecorded = notRecorded(m, controls)
	return in, nil
}

// notRecorded lists what the switches left unrecorded: the stretches the
// host's recording was off, and each participant's stretches of declined
// consent, up to the meeting's end (or now, while it goes on).
func notRecorded(m store.Meeting, controls store.ControlLog) []minutes.Gap {
	if m.StartedAt.IsZero() || len(controls) == 0 {
		return nil
	}
	end := m.EndedAt
	if end.IsZero() {
		end = time.Now()
	}
	endMS := end.Sub(m.StartedAt).Milliseconds()
	var out []minutes.Gap
	add := func(identity, reason string, offs []store.Interval) {
		for _, iv := range offs {
			out = append(out, minutes.Gap{Speaker: identity, Start: minutes.Seconds(iv.StartMS), End: minutes.Seconds(iv.EndMS), Reason: reason})
		}
	}
	add("", minutes.ReasonNotRecorded, controls.Off(store.ControlRecording, "", endMS))
	add("", minutes.ReasonNotTranscribed, controls.Off(store.ControlTranscription, "", endMS))
	var seen []string
	for _, c := range controls {
		if c.Kind == store.ControlConsent && !slices.Contains(seen, c.Identity) {
			seen = append(seen, c.Identity)
			add(c.Identity, minutes.ReasonDeclined, controls.Off(store.ControlConsent, c.Identity, endMS))
		}
	}
	return out
}

// voiceID is the speaker key of one voice on a participant's track.
func voiceID(identity, label string) string { return identity + "#" + label }

// voiceNames names a track's voices: the main one after the participant,
// the others "Name (2)"...
func voiceNames(t store.Track, participant string) map[string]string {
	turns := make([]diarize.Turn, len(t.Voices))
	for i, v := range t.Voices {
		turns[i] = diarize.Turn{Label: v.Label, StartMS: v.StartMS, EndMS: v.EndMS}
	}
	return diarize.Names(turns, participant)
}

// splitByVoice gives each word of a piece the voice that overlaps it most
// (or the nearest one), and cuts the piece where the voice changes.
func splitByVoice(piece minutes.Piece, t store.Track) []minutes.Piece {
	if len(piece.Words) == 0 {
		piece.Speaker = voiceID(t.Identity, voiceAt(t, piece.StartMS, piece.EndMS))
		return []minutes.Piece{piece}
	}
	var out []minutes.Piece
	for _, w := range piece.Words {
		who := voiceID(t.Identity, voiceAt(t, w.Start.MS(), w.End.MS()))
		if n := len(out); n == 0 || out[n-1].Speaker != who {
			out = append(out, minutes.Piece{Speaker: who, StartMS: w.Start.MS()})
		}
		cur := &out[len(out)-1]
		cur.Words = append(cur.Words, w)
		cur.EndMS = w.End.MS()
		if cur.Text != "" {
			cur.Text += " "
		}
		cur.Text += w.Word
	}
	return out
}

// voiceAt is the label of the voice that overlaps [start, end) (meeting
// clock) the most, or the nearest one when none does.
func voiceAt(t store.Track, start, end int64) string {
	best, bestOverlap, nearest, nearestGap := "", int64(0), "", int64(math.MaxInt64)
	for _, v := range t.Voices {
		vs, ve := t.StartMS+v.StartMS, t.StartMS+v.EndMS
		if o := min(end, ve) - max(start, vs); o > bestOverlap {
			best, bestOverlap = v.Label, o
		}
		gap := max(vs-end, start-ve, 0)
		if gap < nearestGap {
			nearest, nearestGap = v.Label, gap
		}
	}
	if best != "" {
		return best
	}
	return nearest
}
