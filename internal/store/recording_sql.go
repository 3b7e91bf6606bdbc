package store

import (
	"context"
	"fmt"
	"slices"
)

// ControlKind names one of a meeting's recording switches.
type ControlKind string

// The switches. Recording and transcription are the host's, for the whole
// meeting; consent is one participant's (Identity): off means they
// declined to be recorded. Every switch is on until a control turns it off.
const (
	ControlRecording     ControlKind = "recording"
	ControlTranscription ControlKind = "transcription"
	ControlConsent       ControlKind = "consent"
)

// Valid reports whether k is a known switch.
func (k ControlKind) Valid() bool {
	return k == ControlRecording || k == ControlTranscription || k == ControlConsent
}

// Control is one setting of a switch, at AtMS on the meeting clock (0 when
// it was set before the clock started: it then holds from the start).
type Control struct {
	MeetingID string
	Seq       int64
	Kind      ControlKind
	// Identity is the participant a consent is theirs; "" otherwise.
	Identity string
	Enabled  bool
	AtMS     int64
}

// AddControl appends a control to its meeting's log. Callers serialise
// the controls of one meeting (meeting.Gate does): the sequence number is
// the next free one.
func (q Queries) AddControl(ctx context.Context, c Control) (Control, error) {
	if !c.Kind.Valid() {
		return c, fmt.Errorf("record control: unknown kind %q", c.Kind)
	}
	on := 0
	if c.Enabled {
		on = 1
	}
	err := q.q.QueryRowContext(ctx, `INSERT INTO recording_controls (meeting_id, seq, kind, identity, enabled, at_ms)
		SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM recording_controls WHERE meeting_id = $1
		RETURNING seq`, c.MeetingID, string(c.Kind), c.Identity, on, max(c.AtMS, 0)).Scan(&c.Seq)
	if err != nil {
		return c, fmt.Errorf("record %s control of %s: %w", c.Kind, c.MeetingID, err)
	}
	return c, nil
}

// Controls lists a meeting's controls in the order they were set.
func (q Queries) Controls(ctx context.Context, meetingID string) (ControlLog, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT meeting_id, seq, kind, identity, enabled, at_ms
		FROM recording_controls WHERE meeting_id = $1 ORDER BY seq`, meetingID)
	if err != nil {
		return nil, fmt.Errorf("list controls of %s: %w", meetingID, err)
	}
	defer rows.Close()
	var out ControlLog
	for rows.Next() {
		var (
			c    Control
			kind string
			on   int64
		)
		if err := rows.Scan(&c.MeetingID, &c.Seq, &kind, &c.Identity, &on, &c.AtMS); err != nil {
			return nil, fmt.Errorf("list controls of %s: %w", meetingID, err)
		}
		c.Kind, c.Enabled = ControlKind(kind), on != 0
		out = append(out, c)
	}
	return out, rows.Err()
}

// ControlLog is a meeting's controls in order.
type ControlLog []Control

// On reports whether a switch is on now (identity only for consent).
func (l ControlLog) On(kind ControlKind, identity string) bool {
	for _, c := range slices.Backward(l) {
		if c.Kind == kind && c.Identity == identity {
			return c.Enabled
		}
	}
	return true
}

// Declined lists the participants whose consent is off now.
func (l ControlLog) Declined() []string {
	var out []string
	for _, c := range l {
		if c.Kind == ControlConsent && !l.On(ControlConsent, c.Identity) && !slices.Contains(out, c.Identity) {
			out = append(out, c.Identity)
		}
	}
	return out
}

// Interval is a stretch of the meeting clock, [StartMS, EndMS).
type Interval struct{ StartMS, EndMS int64 }

// Off returns the stretches of [0, endMS) during which a switch was off,
// in order. A control set at the same instant as an earlier one replaces
// it (a host who turns recording off before anyone joined, at 0).
func (l ControlLog) Off(kind ControlKind, identity string, endMS int64) []Interval {
	var (
		out  []Interval
		on   = true
		from int64
	)
	for _, c := range l {
		if c.Kind != kind || c.Identity != identity {
			continue
		}
		at := min(max(c.AtMS, 0), endMS)
		switch {
		case on && !c.Enabled:
			on, from = false, at
		case !on && c.Enabled:
			on = true
			if at > from {
				out = append(out, Interval{from, at})
			}
		}
	}
	if !on && endMS > from {
		out = append(out, Interval{from, endMS})
	}
	return out
}
