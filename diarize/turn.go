package diarize

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Turn is one stretch of one anonymous voice in mixed audio. Times are
// integer milliseconds from the start of the audio sent to the backend: the
// caller adds the audio's offset on the meeting clock.
type Turn struct {
	// Label is the backend's anonymous name for the voice ("SPEAKER_00");
	// equal labels within one answer are the same voice. Names turns
	// labels into display names.
	Label   string
	StartMS int64
	EndMS   int64
}

var (
	// ErrBadAnswer means the backend reported success with something that
	// is not a usable diarization: malformed JSON, an unlabelled turn, or
	// times that are not finite, outside the audio, reversed or out of
	// order. Retrying rarely helps; the segment should be flagged.
	ErrBadAnswer = errors.New("diarization backend gave an unusable answer")
	// ErrInvalidRequest means the request was refused before it was sent
	// (no audio URL, no audio length, a bad media key). Retrying cannot help.
	ErrInvalidRequest = errors.New("invalid diarization request")
)

// JobError is a diarization job the backend ran and gave up on: its status
// is failed or canceled. Message is the server's reason, when it gave one.
type JobError struct {
	JobID   string
	Status  string
	Message string
}

func (e *JobError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("diarization job %s %s without a reason", e.JobID, e.Status)
	}
	return fmt.Sprintf("diarization job %s %s: %s", e.JobID, e.Status, e.Message)
}

// Job statuses of the pyannote API.
const (
	statusPending   = "pending"
	statusCreated   = "created"
	statusRunning   = "running"
	statusSucceeded = "succeeded"
	statusFailed    = "failed"
	statusCanceled  = "canceled"
)

func terminal(status string) bool {
	return status == statusSucceeded || status == statusFailed || status == statusCanceled
}

// timeSlack is how far past the audio's end (or before its start) a time
// may lie and still be trusted, clamped into the audio: the caller's length
// comes from container metadata, the backend's from decoded samples, and
// pyannote's frames step 17 ms.
const timeSlack = 250 * time.Millisecond

type wireTurn struct {
	Speaker string   `json:"speaker"`
	Start   *float64 `json:"start"`
	End     *float64 `json:"end"`
}

type wireOutput struct {
	Diarization          []wireTurn `json:"diarization"`
	ExclusiveDiarization []wireTurn `json:"exclusiveDiarization"`
	Warning              string     `json:"warning"`
	Error                string     `json:"error"`
}

// wireJob is GET /v1/jobs/{id}'s answer and the webhook's body.
type wireJob struct {
	JobID  string          `json:"jobId"`
	Status string          `json:"status"`
	Output json.RawMessage `json:"output"`
	// Some servers put a failure's reason at the top rather than in output.
	Error   json.RawMessage `json:"error"`
	Message string          `json:"message"`
}

// failureMessage finds why a job failed wherever the server put it.
func (j *wireJob) failureMessage() string {
	var out wireOutput
	if len(j.Output) > 0 && json.Unmarshal(j.Output, &out) == nil && out.Error != "" {
		return out.Error
	}
	if len(j.Error) > 0 {
		var s string
		if json.Unmarshal(j.Error, &s) == nil && s != "" {
			return s
		}
		if m := errorMessage([]byte(`{"error":` + string(j.Error) + `}`)); m != "" {
			return m
		}
	}
	return j.Message
}

// parseOutput checks a succeeded job's output against the audio's length
// and returns its turns. exclusive picks exclusiveDiarization (one voice at
// a time) when the server gave it.
func parseOutput(raw json.RawMessage, audio time.Duration, exclusive bool) (turns []Turn, warning string, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, "", fmt.Errorf("%w: job succeeded without an output", ErrBadAnswer)
	}
	var out wireOutput
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, "", fmt.Errorf("%w: output: %w", ErrBadAnswer, err)
	}
	wire := out.Diarization
	if exclusive {
		if out.ExclusiveDiarization != nil {
			wire = out.ExclusiveDiarization
		} else {
			warning = "exclusive diarization asked for but not given: overlapping turns kept"
		}
	}
	if out.Warning != "" {
		warning = joinWarnings(warning, out.Warning)
	}
	turns, err = checkTurns(wire, audio)
	return turns, warning, err
}

func joinWarnings(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// checkTurns converts wire turns to milliseconds, refusing anything a
// caller could not place on the meeting clock.
func checkTurns(wire []wireTurn, audio time.Duration) ([]Turn, error) {
	limit := (audio + timeSlack).Seconds()
	slack := timeSlack.Seconds()
	turns := make([]Turn, 0, len(wire))
	var prevStart float64
	for i, w := range wire {
		switch {
		case w.Speaker == "":
			return nil, fmt.Errorf("%w: turn %d has no speaker label", ErrBadAnswer, i)
		case w.Start == nil || w.End == nil:
			return nil, fmt.Errorf("%w: turn %d (%s) lacks a start or an end", ErrBadAnswer, i, w.Speaker)
		}
		start, end := *w.Start, *w.End
		switch {
		case math.IsNaN(start) || math.IsInf(start, 0) || math.IsNaN(end) || math.IsInf(end, 0):
			return nil, fmt.Errorf("%w: turn %d (%s) has non-finite times %v-%v", ErrBadAnswer, i, w.Speaker, start, end)
		case start < -slack || end > limit:
			return nil, fmt.Errorf("%w: turn %d (%s) at %.3f-%.3f s lies outside the %.3f s of audio sent",
				ErrBadAnswer, i, w.Speaker, start, end, audio.Seconds())
		case end <= start:
			return nil, fmt.Errorf("%w: turn %d (%s) ends at %.3f s, not after its start %.3f s",
				ErrBadAnswer, i, w.Speaker, end, start)
		case i > 0 && start < prevStart:
			return nil, fmt.Errorf("%w: turn %d (%s) starts at %.3f s, before the previous turn's %.3f s",
				ErrBadAnswer, i, w.Speaker, start, prevStart)
		}
		prevStart = start
		t := Turn{Label: w.Speaker, StartMS: secondsToMS(start), EndMS: secondsToMS(end)}
		t.StartMS = max(t.StartMS, 0)
		t.EndMS = min(t.EndMS, audio.Milliseconds())
		if t.EndMS <= t.StartMS {
			// A sliver inside the slack past the end: nothing of it is audio.
			continue
		}
		turns = append(turns, t)
	}
	return turns, nil
}

// secondsToMS is the one conversion from a backend's float seconds to
// Greffier's integer milliseconds, rounding to the nearest.
func secondsToMS(s float64) int64 { return int64(math.Round(s * 1000)) }
