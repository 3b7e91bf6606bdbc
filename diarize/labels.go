package diarize

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Names maps the anonymous labels of turns to display names.
//
// On one participant's track (participantName set), the label that speaks
// longest is the participant: the microphone is theirs, so the dominant
// voice is most likely them. The other voices share the microphone and get
// "Name (2)", "Name (3)"... in order of first speech, so that minutes show
// whose track they came from. Equal speaking time goes to the voice heard
// first.
//
// On a room recording with no known participant (participantName empty or
// blank), the labels become "Speaker 1", "Speaker 2"... in order of first
// speech, which is how a reader meets them.
func Names(turns []Turn, participantName string) map[string]string {
	type voice struct {
		label   string
		firstMS int64
		totalMS int64
	}
	var voices []voice
	index := make(map[string]int)
	for _, t := range turns {
		i, ok := index[t.Label]
		if !ok {
			i = len(voices)
			index[t.Label] = i
			voices = append(voices, voice{label: t.Label, firstMS: t.StartMS})
		}
		voices[i].firstMS = min(voices[i].firstMS, t.StartMS)
		voices[i].totalMS += max(t.EndMS-t.StartMS, 0)
	}
	// Turns arrive sorted from Diarize, but Names takes any slice.
	slices.SortStableFunc(voices, func(a, b voice) int { return cmp.Compare(a.firstMS, b.firstMS) })

	names := make(map[string]string, len(voices))
	name := strings.TrimSpace(participantName)
	if name == "" {
		for i, v := range voices {
			names[v.label] = fmt.Sprintf("Speaker %d", i+1)
		}
		return names
	}
	owner := 0
	for i, v := range voices {
		if v.totalMS > voices[owner].totalMS {
			owner = i
		}
	}
	n := 2
	for i, v := range voices {
		if i == owner {
			names[v.label] = name
			continue
		}
		names[v.label] = fmt.Sprintf("%s (%d)", name, n)
		n++
	}
	return names
}
