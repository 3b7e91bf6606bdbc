package transcribe_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportsNoGreffierPackage keeps the package a leaf: backends know
// nothing of meetings, storage or jobs. internal/audio, the leaf of pure
// media formats (Ogg Opus, WAV), and internal/backend, the leaf all
// backend clients share, are the exceptions.
func TestImportsNoGreffierPackage(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", ".").Output()
	require.NoError(t, err)
	for dep := range strings.FieldsSeq(string(out)) {
		if strings.HasPrefix(dep, "github.com/greffier/greffier/") && dep != "github.com/greffier/greffier/transcribe" &&
			dep != "github.com/greffier/greffier/internal/audio" &&
			dep != "github.com/greffier/greffier/internal/backend" {
			t.Errorf("transcribe imports %s", dep)
		}
	}
}

// TestDoublesImportNoGreffierPackage keeps the test doubles free of
// Greffier too: they share the media formats' leaf (internal/audio) and
// kyutaitest uses transcribetest's tone speech, nothing else.
func TestDoublesImportNoGreffierPackage(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", "./transcribetest", "./kyutaitest").Output()
	require.NoError(t, err)
	for dep := range strings.FieldsSeq(string(out)) {
		if strings.HasPrefix(dep, "github.com/greffier/greffier/") &&
			dep != "github.com/greffier/greffier/internal/audio" &&
			dep != "github.com/greffier/greffier/transcribe/transcribetest" &&
			dep != "github.com/greffier/greffier/transcribe/kyutaitest" {
			t.Errorf("a test double imports %s", dep)
		}
	}
}
