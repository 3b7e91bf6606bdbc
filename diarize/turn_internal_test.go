package diarize

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseOutput(t *testing.T) {
	t.Parallel()
	const audio = 10 * time.Second
	for name, tc := range map[string]struct {
		output    string
		exclusive bool
		want      []Turn
		warning   string
		bad       bool
	}{
		"overlapping kept": {
			output: `{"diarization":[{"speaker":"SPEAKER_00","start":0.5,"end":2.25},{"speaker":"SPEAKER_01","start":2.0,"end":3.0}]}`,
			want:   []Turn{{"SPEAKER_00", 500, 2250}, {"SPEAKER_01", 2000, 3000}},
		},
		"exclusive chosen": {
			output:    `{"diarization":[{"speaker":"A","start":0,"end":3}],"exclusiveDiarization":[{"speaker":"A","start":0,"end":2},{"speaker":"B","start":2,"end":3}]}`,
			exclusive: true,
			want:      []Turn{{"A", 0, 2000}, {"B", 2000, 3000}},
		},
		"exclusive missing falls back, with a warning": {
			output:    `{"diarization":[{"speaker":"A","start":0,"end":3}],"warning":"short audio"}`,
			exclusive: true,
			want:      []Turn{{"A", 0, 3000}},
			warning:   "exclusive diarization asked for but not given: overlapping turns kept; short audio",
		},
		"slack clamped": {
			output: `{"diarization":[{"speaker":"A","start":-0.1,"end":1},{"speaker":"A","start":9.5,"end":10.2}]}`,
			want:   []Turn{{"A", 0, 1000}, {"A", 9500, 10000}},
		},
		"sliver past the end dropped": {
			output: `{"diarization":[{"speaker":"A","start":10.05,"end":10.2}]}`,
			want:   []Turn{},
		},
		"no speech":         {output: `{"diarization":[]}`, want: []Turn{}},
		"past the end":      {output: `{"diarization":[{"speaker":"A","start":9,"end":10.3}]}`, bad: true},
		"before the start":  {output: `{"diarization":[{"speaker":"A","start":-0.3,"end":1}]}`, bad: true},
		"reversed":          {output: `{"diarization":[{"speaker":"A","start":2,"end":1}]}`, bad: true},
		"empty turn":        {output: `{"diarization":[{"speaker":"A","start":1,"end":1}]}`, bad: true},
		"unsorted":          {output: `{"diarization":[{"speaker":"A","start":2,"end":3},{"speaker":"B","start":1,"end":2}]}`, bad: true},
		"no label":          {output: `{"diarization":[{"speaker":"","start":1,"end":2}]}`, bad: true},
		"no end":            {output: `{"diarization":[{"speaker":"A","start":1}]}`, bad: true},
		"overflowing float": {output: `{"diarization":[{"speaker":"A","start":1,"end":1e999}]}`, bad: true},
		"string times":      {output: `{"diarization":[{"speaker":"A","start":"1","end":"2"}]}`, bad: true},
		"null output":       {output: `null`, bad: true},
		"not JSON":          {output: `{"diarization":[`, bad: true},
	} {
		turns, warning, err := parseOutput([]byte(tc.output), audio, tc.exclusive)
		if tc.bad {
			require.ErrorIs(t, err, ErrBadAnswer, name)
			continue
		}
		require.NoError(t, err, name)
		require.Equal(t, tc.want, turns, name)
		require.Equal(t, tc.warning, warning, name)
	}
}

func TestJobFailureMessage(t *testing.T) {
	t.Parallel()
	for want, job := range map[string]wireJob{
		"in output":         {Output: []byte(`{"error":"in output"}`)},
		"top-level string":  {Error: []byte(`"top-level string"`)},
		"top-level object":  {Error: []byte(`{"message":"top-level object"}`)},
		"top-level message": {Message: "top-level message"},
		"":                  {},
	} {
		require.Equal(t, want, job.failureMessage())
	}
	err := error(&JobError{JobID: "j", Status: statusCanceled})
	var je *JobError
	require.True(t, errors.As(err, &je))
	require.Equal(t, "diarization job j canceled without a reason", err.Error())
}

// BenchmarkParseOutput checks an hour of a lively room: 2,000 turns.
func BenchmarkParseOutput(b *testing.B) {
	var out strings.Builder
	out.WriteString(`{"diarization":[`)
	for i := range 2000 {
		if i > 0 {
			out.WriteByte(',')
		}
		fmt.Fprintf(&out, `{"speaker":"SPEAKER_%02d","start":%.3f,"end":%.3f}`, i%7, float64(i)*1.8, float64(i)*1.8+1.5)
	}
	out.WriteString(`]}`)
	raw := []byte(out.String())
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		turns, _, err := parseOutput(raw, time.Hour, false)
		if err != nil || len(turns) != 2000 {
			b.Fatal(err, len(turns))
		}
	}
}
