package usertext

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckLine(t *testing.T) {
	t.Parallel()
	require.NoError(t, CheckLine("Élodie Dupré-Ñúñez 💬", 200))
	for _, bad := range []string{"a\x00b", "a\x1b[31mb", "a\nb", "a\u0085b", "a\u2028b", "\xff\xfe", strings.Repeat("é", 201)} {
		require.Error(t, CheckLine(bad, 200), "%q", bad)
	}
	require.ErrorIs(t, CheckLine("x\x00", 10), ErrControl)
}

func TestClean(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain é":           "plain é",
		"a\x00b":            "ab",
		"\x1b[2Jcleared":    "[2Jcleared",
		"two\nlines\r\tand": "two lines  and",
		"bad\xffbyte":       "bad\uFFFDbyte",
		"c1\u0085\u009bx":   "c1x",
	} {
		require.Equal(t, want, Clean(in), "%q", in)
	}
}

func TestValidLanguage(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"", "fr", "en", "fr-FR", "en-GB", "zh-Hant-TW", "es-419", "gsw", "x-klingon"} {
		require.True(t, ValidLanguage(ok), "%q", ok)
	}
	for _, bad := range []string{"f", "french", "fr_FR", "fr-", "-fr", "fr--FR", "fr-FRANCEXYZ", "12", "fr\x00",
		"en-GB; DROP", "é", strings.Repeat("a-", 20) + "a"} {
		require.False(t, ValidLanguage(bad), "%q", bad)
	}
}
