package token

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSignVerify(t *testing.T) {
	t.Parallel()
	s, err := NewSigner([]byte(strings.Repeat("k", 32)))
	require.NoError(t, err)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	raw, err := s.Sign(Claims{MeetingID: "m1", Identity: "alice", DisplayName: "Alice", Rights: []Right{RightPublish}, ExpiresAt: exp})
	require.NoError(t, err)

	c, err := s.Verify(raw)
	require.NoError(t, err)
	require.Equal(t, "m1", c.MeetingID)
	require.Equal(t, "alice", c.Identity)
	require.Equal(t, "Alice", c.DisplayName)
	require.True(t, c.Can(RightPublish))
	require.False(t, c.Can(RightListen))
	require.True(t, exp.Equal(c.ExpiresAt))
	require.NotEmpty(t, c.ID, "every token gets an id to revoke it by")

	raw2, err := s.Sign(Claims{ID: "chosen", MeetingID: "m1", Identity: "alice", ExpiresAt: exp})
	require.NoError(t, err)
	c2, err := s.Verify(raw2)
	require.NoError(t, err)
	require.Equal(t, "chosen", c2.ID)
	raw3, err := s.Sign(Claims{MeetingID: "m1", Identity: "alice", ExpiresAt: exp})
	require.NoError(t, err)
	c3, err := s.Verify(raw3)
	require.NoError(t, err)
	require.NotEqual(t, c.ID, c3.ID)
}

func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	s, err := NewSigner([]byte(strings.Repeat("k", 32)))
	require.NoError(t, err)
	other, err := NewSigner([]byte(strings.Repeat("x", 32)))
	require.NoError(t, err)
	good := Claims{MeetingID: "m1", Identity: "alice", ExpiresAt: time.Now().Add(time.Minute)}
	forged, err := other.Sign(good)
	require.NoError(t, err)

	past := *s
	past.now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	expired, err := past.Sign(Claims{MeetingID: "m1", Identity: "alice", ExpiresAt: time.Now().Add(-time.Hour)})
	require.NoError(t, err)

	for name, raw := range map[string]string{"forged": forged, "expired": expired, "garbage": "not.a.token", "empty": ""} {
		_, err := s.Verify(raw)
		require.Error(t, err, name)
		require.True(t, errors.Is(err, ErrInvalid), name)
	}
	_, err = NewSigner([]byte("short"))
	require.Error(t, err)
}

func TestFromAuthorizationIgnoresTheSchemesCase(t *testing.T) {
	t.Parallel()
	for _, h := range []string{"Bearer abc", "bearer abc", "BEARER abc", "  Bearer   abc  "} {
		raw, ok := FromAuthorization(h)
		require.True(t, ok, "%q", h)
		require.Equal(t, "abc", raw)
	}
	for _, h := range []string{"", "Bearer", "Bearer ", "Basic abc", "Bearerabc", "Token abc"} {
		_, ok := FromAuthorization(h)
		require.False(t, ok, "%q", h)
	}
}

func TestKnownRightsAreTheFourTheServerHonours(t *testing.T) {
	for _, r := range []Right{RightPublish, RightListen, RightName, RightMinutes} {
		require.True(t, Known(r), r)
	}
	for _, r := range []Right{"", "admin", "Publish", "minutes "} {
		require.False(t, Known(r), r)
	}
}
