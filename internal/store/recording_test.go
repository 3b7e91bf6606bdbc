package store

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestControlLogOffStretches(t *testing.T) {
	t.Parallel()
	c := func(kind ControlKind, identity string, on bool, at int64) Control {
		return Control{Kind: kind, Identity: identity, Enabled: on, AtMS: at}
	}
	l := ControlLog{
		// Turned off and on again before anyone joined: on from the start.
		c(ControlRecording, "", false, 0), c(ControlRecording, "", true, 0),
		c(ControlRecording, "", false, 5000), c(ControlRecording, "", false, 6000), // twice off: one stretch
		c(ControlConsent, "bob", false, 7000),
		c(ControlRecording, "", true, 9000),
		c(ControlTranscription, "", false, 9500),
		c(ControlRecording, "", false, 12000),
	}
	require.Equal(t, []Interval{{5000, 9000}, {12000, 20000}}, l.Off(ControlRecording, "", 20000))
	require.Equal(t, []Interval{{5000, 9000}, {12000, 15000}}, l.Off(ControlRecording, "", 15000))
	require.Equal(t, []Interval{{7000, 20000}}, l.Off(ControlConsent, "bob", 20000))
	require.Empty(t, l.Off(ControlConsent, "alice", 20000))
	require.Equal(t, []Interval{{9500, 20000}}, l.Off(ControlTranscription, "", 20000))
	require.False(t, l.On(ControlRecording, ""))
	require.False(t, l.On(ControlTranscription, ""))
	require.True(t, l.On(ControlConsent, "alice"))
	require.Equal(t, []string{"bob"}, l.Declined())
	require.True(t, ControlLog(nil).On(ControlRecording, ""), "every switch starts on")
}
