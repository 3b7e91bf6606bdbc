package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// optionSummary is what was asked for.
type optionSummary struct {
	Duration time.Duration `json:"duration"`
	Speakers int           `json:"speakers"`
	Turn     time.Duration `json:"turn"`
	Speed    float64       `json:"speed"`
	Slots    int           `json:"slots"`
	Pace     float64       `json:"pace"`
	DTX      bool          `json:"dtx"`
	Levels   bool          `json:"levels"`
	Database string        `json:"database"`
	Poll     time.Duration `json:"poll"`
}

func (o options) summary() optionSummary {
	db := "sqlite"
	if o.postgres != "" {
		db = "postgres"
	}
	return optionSummary{Duration: o.duration, Speakers: o.speakers, Turn: o.turn, Speed: o.speed, Slots: o.slots,
		Pace: o.pace, DTX: o.dtx, Levels: o.levels, Database: db, Poll: o.poll}
}

// meetingSummary is what the script holds.
type meetingSummary struct {
	Turns int           `json:"turns"`
	Words int           `json:"words"`
	Said  time.Duration `json:"said"` // ticks with speech, all speakers
}

func (m *meeting) summary(options) meetingSummary {
	return meetingSummary{Turns: len(m.turns), Words: m.words, Said: m.speech}
}

// report is one run's results.
type report struct {
	Options  optionSummary  `json:"options"`
	Meeting  meetingSummary `json:"meeting"`
	Baseline *phase         `json:"baseline,omitempty"`
	Full     phase          `json:"full"`

	// The end: how soon the minutes follow it.
	BacklogAtEnd int           `json:"backlog_at_end"` // segments not yet transcribed at the end call
	CloseTracks  time.Duration `json:"close_tracks"`   // end call to every track stored
	EndCall      time.Duration `json:"end_call"`       // end call to Pipeline.EndMeeting returned
	State        string        `json:"state"`

	// What the pipeline made.
	Segments     int           `json:"segments"`
	Transcribed  int           `json:"transcribed"`
	Failed       int           `json:"failed"`
	SegmentAudio time.Duration `json:"segment_audio"` // audio sent to the backend, padding included
	Words        int           `json:"words"`

	Backend backendStats `json:"backend"`

	// The batch path afterwards, when asked for.
	Rerun *rerunResult `json:"rerun,omitempty"`

	// Derived: Greffier's CPU against the backend's time.
	GreffierCPU time.Duration `json:"greffier_cpu"` // full pass, meeting and end
	PipelineCPU time.Duration `json:"pipeline_cpu"` // less the baseline's (recorder alone)
	// OverheadPct is PipelineCPU over the backend's time (slot-seconds).
	OverheadPct float64 `json:"overhead_pct"`
	// TotalPct is GreffierCPU, recording included, over the same.
	TotalPct float64 `json:"total_pct"`
	// SpeedFor2Pct is the backend speed at which the pipeline's overhead
	// would be 2% of its time (the overhead per audio second being fixed).
	SpeedFor2Pct float64 `json:"speed_for_2pct"`
}

// rerunResult is the batch re-run of the whole meeting.
type rerunResult struct {
	Wall        time.Duration `json:"wall"` // Rerun call to minutes ready
	CPU         time.Duration `json:"cpu"`
	Segments    int           `json:"segments"`
	Transcribed int           `json:"transcribed"`
	Words       int           `json:"words"`
	Backend     backendStats  `json:"backend"`
}

func (r *report) fill(o options) {
	r.GreffierCPU = r.Full.MeetingCPU + r.Full.EndCPU
	r.PipelineCPU = r.GreffierCPU
	if r.Baseline != nil {
		r.PipelineCPU -= r.Baseline.MeetingCPU + r.Baseline.EndCPU
	}
	if s := r.Backend.ServiceSeconds; s > 0 {
		r.OverheadPct = 100 * r.PipelineCPU.Seconds() / s
		r.TotalPct = 100 * r.GreffierCPU.Seconds() / s
	}
	if r.OverheadPct > 0 {
		r.SpeedFor2Pct = o.speed * 2 / r.OverheadPct
	}
}

func (r *report) print(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	o := r.Options
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, f string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(f, a...)) }
	row("meeting", "%v, %d speakers in %d turns of ~%v, %v said, %d words; dtx=%v, levels=%v", o.Duration, o.Speakers,
		r.Meeting.Turns, o.Turn, r.Meeting.Said.Round(time.Second), r.Meeting.Words, o.DTX, o.Levels)
	row("backend", "speed %g× real time, %d slots; database %s; River poll %v", o.Speed, o.Slots, o.Database, pollText(o.Poll))
	row("packets", "%d sent, %d dropped by the recorder", r.Full.Packets, r.Full.Dropped)
	row("meeting wall time", "%v (%.1f× real time; -pace %g)", r.Full.MeetingWall.Round(time.Millisecond),
		o.Duration.Seconds()/r.Full.MeetingWall.Seconds(), o.Pace)
	row("segments", "%d: %d transcribed, %d failed; %v of audio sent", r.Segments, r.Transcribed, r.Failed,
		r.SegmentAudio.Round(time.Second))
	row("words in the minutes", "%d of %d said", r.Words, r.Meeting.Words)
	row("backlog at the end call", "%d segments", r.BacklogAtEnd)
	row("END → tracks stored", "%v", r.CloseTracks.Round(time.Millisecond))
	row("END → EndMeeting returned", "%v", r.EndCall.Round(time.Millisecond))
	row("END → minutes ready", "%v (state %s)", r.Full.EndWall.Round(time.Millisecond), r.State)
	row("backend requests", "%d, at most %d at once (slots %d)", r.Backend.Requests, r.Backend.MaxInFlight, o.Slots)
	row("backend time", "%.1f slot-s (%.1f s with ≥1 request)", r.Backend.ServiceSeconds, r.Backend.BusySeconds)
	row("Greffier CPU, full pass", "%.2f s (meeting %.2f s, after the end %.2f s)", r.GreffierCPU.Seconds(),
		r.Full.MeetingCPU.Seconds(), r.Full.EndCPU.Seconds())
	if b := r.Baseline; b != nil {
		row("CPU, recorder alone", "%.2f s (meeting %.2f s, closing %.2f s)", (b.MeetingCPU + b.EndCPU).Seconds(),
			b.MeetingCPU.Seconds(), b.EndCPU.Seconds())
		row("pipeline CPU (difference)", "%.2f s = %.2f%% of backend time", r.PipelineCPU.Seconds(), r.OverheadPct)
		row("speed where that is 2%", "%.1f× real time", r.SpeedFor2Pct)
	}
	row("all Greffier CPU / backend time", "%.2f%%", r.TotalPct)
	if rr := r.Rerun; rr != nil {
		row("re-run (batch path)", "%v to minutes ready; %d segments, %d transcribed, %d words", rr.Wall.Round(time.Millisecond),
			rr.Segments, rr.Transcribed, rr.Words)
		row("re-run backend", "%d requests, at most %d at once (slots %d); %.1f slot-s in %.1f s busy (%.2f slots used on average)",
			rr.Backend.Requests, rr.Backend.MaxInFlight, o.Slots, rr.Backend.ServiceSeconds, rr.Backend.BusySeconds,
			rr.Backend.ServiceSeconds/max(rr.Backend.BusySeconds, 1e-9))
		row("re-run CPU", "%.2f s = %.2f%% of its backend time", rr.CPU.Seconds(), 100*rr.CPU.Seconds()/max(rr.Backend.ServiceSeconds, 1e-9))
	}
	return tw.Flush()
}

func pollText(d time.Duration) string {
	if d == 0 {
		return "default"
	}
	return d.String()
}
