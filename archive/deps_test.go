package archive

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The package is a leaf: it must not reach into storage, the store, jobs
// or any other Greffier package but internal/audio, the leaf of pure media
// formats (Opus TOC, EBML).
func TestImportsNoOtherGreffierPackage(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/greffier/greffier/") {
			require.Contains(t, []string{"github.com/greffier/greffier/archive", "github.com/greffier/greffier/internal/audio"}, dep)
		}
	}
}
