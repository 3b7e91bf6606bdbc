package diarize_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/diarize"
)

func TestNames(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		turns       []diarize.Turn
		participant string
		want        map[string]string
	}{
		"longest speaker is the participant, others numbered by first speech": {
			turns: []diarize.Turn{
				{Label: "SPEAKER_02", StartMS: 0, EndMS: 1000},
				{Label: "SPEAKER_00", StartMS: 1000, EndMS: 9000},
				{Label: "SPEAKER_01", StartMS: 9000, EndMS: 10000},
				{Label: "SPEAKER_02", StartMS: 10000, EndMS: 11000},
			},
			participant: "Ada",
			want:        map[string]string{"SPEAKER_00": "Ada", "SPEAKER_02": "Ada (2)", "SPEAKER_01": "Ada (3)"},
		},
		"time summed over turns": {
			turns: []diarize.Turn{
				{Label: "A", StartMS: 0, EndMS: 3000},
				{Label: "B", StartMS: 3000, EndMS: 5000},
				{Label: "B", StartMS: 5000, EndMS: 7000},
			},
			participant: "Bo",
			want:        map[string]string{"B": "Bo", "A": "Bo (2)"},
		},
		"a tie goes to the voice heard first": {
			turns: []diarize.Turn{
				{Label: "SPEAKER_01", StartMS: 0, EndMS: 1000},
				{Label: "SPEAKER_00", StartMS: 1000, EndMS: 2000},
			},
			participant: "Cy",
			want:        map[string]string{"SPEAKER_01": "Cy", "SPEAKER_00": "Cy (2)"},
		},
		"unsorted turns, first speech decides the order": {
			turns: []diarize.Turn{
				{Label: "Z", StartMS: 5000, EndMS: 6000},
				{Label: "Y", StartMS: 0, EndMS: 100},
				{Label: "X", StartMS: 1000, EndMS: 4000},
			},
			participant: "Di",
			want:        map[string]string{"X": "Di", "Y": "Di (2)", "Z": "Di (3)"},
		},
		"room recording": {
			turns: []diarize.Turn{
				{Label: "SPEAKER_01", StartMS: 0, EndMS: 500},
				{Label: "SPEAKER_00", StartMS: 500, EndMS: 9000},
				{Label: "SPEAKER_01", StartMS: 9000, EndMS: 9500},
			},
			participant: "  ",
			want:        map[string]string{"SPEAKER_01": "Speaker 1", "SPEAKER_00": "Speaker 2"},
		},
		"one voice": {
			turns:       []diarize.Turn{{Label: "SPEAKER_00", StartMS: 0, EndMS: 500}},
			participant: "Eve",
			want:        map[string]string{"SPEAKER_00": "Eve"},
		},
		"no turns": {participant: "Eve", want: map[string]string{}},
	} {
		require.Equal(t, tc.want, diarize.Names(tc.turns, tc.participant), name)
	}
}
