package transcribe_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportsNoGreffierPackage keeps the package a leaf: backends know
// nothing of meetings, storage or jobs. Its own internal packages
// (transcribe/internal/oggopus) and internal/backend, the leaf all backend
// clients share, are the exceptions.
func TestImportsNoGreffierPackage(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", ".").Output()
	require.NoError(t, err)
	for dep := range strings.FieldsSeq(string(out)) {
		if strings.HasPrefix(dep, "github.com/greffier/greffier/") && dep != "github.com/greffier/greffier/transcribe" &&
			!strings.HasPrefix(dep, "github.com/greffier/greffier/transcribe/internal/") &&
			dep != "github.com/greffier/greffier/internal/backend" {
			t.Errorf("transcribe imports %s", dep)
		}
	}
}

// TestDoublesImportNoGreffierPackage keeps the test doubles free of
// Greffier too: they share transcribe's own Ogg Opus reader and
// kyutaitest uses transcribetest's tone speech, nothing else.
func TestDoublesImportNoGreffierPackage(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", "./transcribetest", "./kyutaitest").Output()
	require.NoError(t, err)
	for dep := range strings.FieldsSeq(string(out)) {
		if strings.HasPrefix(dep, "github.com/greffier/greffier/") &&
			!strings.HasPrefix(dep, "github.com/greffier/greffier/transcribe/internal/") &&
			dep != "github.com/greffier/greffier/transcribe/transcribetest" &&
			dep != "github.com/greffier/greffier/transcribe/kyutaitest" {
			t.Errorf("a test double imports %s", dep)
		}
	}
}
