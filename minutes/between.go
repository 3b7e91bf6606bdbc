package minutes

// Between returns the minutes of the stretch [from, to) of the meeting
// clock: the turns, missing and not recorded stretches that overlap it, whole (a turn is
// never cut, so a quote keeps its context), and the speakers heard in it.
// The summary, which speaks of the whole meeting, is left out. to <= 0
// means the end of the meeting.
func (d Document) Between(from, to Seconds) Document {
	in := func(s, e Seconds) bool { return e > from && (to <= 0 || s < to) }
	out := d
	out.Turns, out.Missing, out.Speakers, out.NotRecorded = nil, nil, nil, nil
	out.Summary, out.SummaryError = nil, ""
	heard := map[string]bool{}
	for _, t := range d.Turns {
		if in(t.Start, t.End) {
			out.Turns = append(out.Turns, t)
			heard[t.Speaker] = true
		}
	}
	for _, g := range d.Missing {
		if in(g.Start, g.End) {
			out.Missing = append(out.Missing, g)
			heard[g.Speaker] = true
		}
	}
	for _, g := range d.NotRecorded {
		if in(g.Start, g.End) {
			out.NotRecorded = append(out.NotRecorded, g)
		}
	}
	for _, s := range d.Speakers {
		if heard[s.ID] {
			out.Speakers = append(out.Speakers, s)
		}
	}
	if out.Turns == nil {
		out.Turns = []Turn{}
	}
	if out.Missing == nil {
		out.Missing = []Gap{}
	}
	if out.Speakers == nil {
		out.Speakers = []Speaker{}
	}
	return out
}
