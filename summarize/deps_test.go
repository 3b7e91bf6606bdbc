package summarize_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportsNoGreffierPackage keeps the package a leaf, so that minutes
// can hold a *Summary without an import cycle. internal/backend, the leaf
// all backend clients share, is the one exception.
func TestImportsNoGreffierPackage(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", ".", "./summarizetest").Output()
	require.NoError(t, err)
	for dep := range strings.FieldsSeq(string(out)) {
		if strings.HasPrefix(dep, "github.com/greffier/greffier/") && !strings.HasPrefix(dep, "github.com/greffier/greffier/summarize") &&
			dep != "github.com/greffier/greffier/internal/backend" {
			t.Errorf("summarize imports %s", dep)
		}
	}
	require.Contains(t, string(out), "github.com/greffier/greffier/summarize\n")
}
