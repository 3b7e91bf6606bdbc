package diarize_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportsNoGreffierPackage keeps the package a leaf: it knows nothing
// of storage, the database, jobs or meetings (see the package doc).
// Its only Greffier imports are leaves: internal/audio (PCM decoding),
// internal/backend (what all backend clients share) and internal/httperr
// (the JSON error body of its webhook receiver).
func TestImportsNoGreffierPackage(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", ".").Output()
	require.NoError(t, err)
	require.Contains(t, string(out), "github.com/greffier/greffier/diarize\n")
	for dep := range strings.FieldsSeq(string(out)) {
		switch {
		case !strings.HasPrefix(dep, "github.com/greffier/greffier/"),
			dep == "github.com/greffier/greffier/diarize",
			dep == "github.com/greffier/greffier/internal/audio",
			dep == "github.com/greffier/greffier/internal/backend",
			dep == "github.com/greffier/greffier/internal/httperr":
		default:
			t.Errorf("diarize imports %s", dep)
		}
	}
}
