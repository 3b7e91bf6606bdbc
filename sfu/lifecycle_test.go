package sfu_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/sfu"
	"github.com/greffier/greffier/sfu/sfutest"
)

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	signer, err := token.NewSigner(secret)
	require.NoError(t, err)
	mm := &memMeetings{meetings: map[string]*memMeeting{}}
	tap := &recTap{}
	for _, tc := range []struct {
		cfg   sfu.Config
		field string
	}{
		{sfu.Config{UDPAddr: "nowhere"}, "UDPAddr"},
		{sfu.Config{PublicIPs: []string{"example.com"}}, "PublicIPs"},
		{sfu.Config{MaxParticipants: -1}, "MaxParticipants"},
		{sfu.Config{Slots: 40}, "Slots"},
		{sfu.Config{MaxPacketSize: 100}, "MaxPacketSize"},
		{sfu.Config{ICEFailedTimeout: -time.Second}, "ICEFailedTimeout"},
	} {
		_, err := sfu.New(tc.cfg, mm, signer, tap, nil)
		require.ErrorContains(t, err, tc.field)
	}
	_, err = sfu.New(sfu.Config{}, nil, signer, tap, nil)
	require.Error(t, err)

	d := sfu.Config{}.WithDefaults()
	require.Equal(t, sfu.DefaultUDPAddr, d.UDPAddr)
	require.Equal(t, 150, d.MaxParticipants)
	require.Equal(t, 3, d.Slots)
	require.Equal(t, 1500, d.MaxPacketSize)
}

func TestStopClosesEverythingAndIsIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	require.NotNil(t, b.sfu.UDPAddr())
	require.Error(t, b.sfu.Start(t.Context()), "Start twice")
	pub := b.publish(t, "alice", tone(t, 440, 3))
	lis := b.listen(t, "bob")
	tr := b.nextTrack(t)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.sfu.Stop(ctx))
	_, closes := tr.snapshot()
	require.Equal(t, 1, closes, "Stop returns after every tap closed")
	require.NoError(t, b.sfu.Stop(ctx))

	_, err := sfutest.Publish(t.Context(), sfutest.PublishOptions{WHIPURL: b.whip, OggPath: tone(t, 440, 1),
		Token: b.token(t, "m1", "carol", token.RightPublish), HTTPClient: b.srv.Client()})
	requireStatus(t, err, http.StatusServiceUnavailable, "unavailable")
	_ = pub.CloseWithoutDelete()
	// Stop closed the listener's session: its DELETE finds nothing.
	requireStatus(t, lis.Close(t.Context()), http.StatusNotFound, "session_not_found")
}
