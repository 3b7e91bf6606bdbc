package backend_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportsNoGreffierPackage keeps the package a leaf that every
// backend client can import.
func TestImportsNoGreffierPackage(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", ".").Output()
	require.NoError(t, err)
	require.Contains(t, string(out), "github.com/greffier/greffier/internal/backend\n")
	for dep := range strings.FieldsSeq(string(out)) {
		if strings.HasPrefix(dep, "github.com/greffier/greffier/") && dep != "github.com/greffier/greffier/internal/backend" {
			t.Errorf("internal/backend imports %s", dep)
		}
	}
}
