package blob_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/layout"
)

func TestValidateKeyAcceptsLayoutKeys(t *testing.T) {
	t.Parallel()
	for _, k := range []string{
		layout.Track("01J0MEETING", "01J0TRACK"),
		layout.SpeechAudio("m", "t", 123456),
		layout.Minutes("m", 3),
		"a", "a.b/c-d_e~f", "ünïcödé/ok",
	} {
		require.NoError(t, blob.ValidateKey(k), k)
	}
}

func TestValidateKeyExplains(t *testing.T) {
	t.Parallel()
	err := blob.ValidateKey("a//b")
	require.ErrorIs(t, err, blob.ErrInvalidKey)
	require.ErrorContains(t, err, "empty segment")
	require.ErrorContains(t, blob.ValidateKey("../x"), `".."`)
}
