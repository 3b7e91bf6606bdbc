package transcribe_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportsNoGreffierPackage keeps the package a leaf: backends know
// nothing of meetings, storage or jobs. internal/backend, the leaf all
// backend clients share, is the one exception.
func TestImportsNoGreffierPackage(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", ".").Output()
	require.NoError(t, err)
	for dep := range strings.FieldsSeq(string(out)) {
		if strings.HasPrefix(dep, "github.com/greffier/greffier/") && dep != "github.com/greffier/greffier/transcribe" &&
			dep != "github.com/greffier/greffier/internal/backend" {
			t.Errorf("transcribe imports %s", dep)
		}
	}
}
