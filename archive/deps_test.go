package archive

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The package is a leaf: it must not reach into storage, the store, jobs
// or any other Greffier package.
func TestImportsNoOtherGreffierPackage(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/greffier/greffier/") {
			require.Equal(t, "github.com/greffier/greffier/archive", dep)
		}
	}
}
