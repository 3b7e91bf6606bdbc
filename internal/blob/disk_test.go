package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/blob/blobtest"
)

// diskUnderTest lets the conformance suite damage files at the documented
// location <root>/<key>.
type diskUnderTest struct {
	*blob.Disk
	root string
}

func (d diskUnderTest) Corrupt(t *testing.T, key string) {
	path := filepath.Join(d.root, filepath.FromSlash(key))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, 10)
	require.NoError(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, 10)
	require.NoError(t, err)
}

func openDisk(t *testing.T) blob.Store {
	root := t.TempDir()
	d, err := blob.NewDisk(root)
	require.NoError(t, err)
	return diskUnderTest{Disk: d, root: root}
}

func TestDiskConformance(t *testing.T) {
	t.Parallel()
	blobtest.RunConformance(t, openDisk)
}

func TestDiskLeavesNoTempFiles(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d, err := blob.NewDisk(root)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = d.Put(ctx, "a/ok", strings.NewReader("fine"), 4)
	require.NoError(t, err)
	_, err = d.Put(ctx, "a/bad", strings.NewReader("short"), 99)
	require.Error(t, err)
	_, err = d.Put(ctx, "a/broken", io.MultiReader(strings.NewReader("abc"), errReader{}), -1)
	require.Error(t, err)

	var files []string
	require.NoError(t, filepath.WalkDir(root, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	}))
	require.ElementsMatch(t, []string{"a/ok", ".meta/a/ok.json"}, files)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// A crash between the metadata rename and the data rename leaves metadata
// that describes a file that never arrived; the old data must still read
// as good, with its true hash.
func TestDiskStaleMetadataIsNotCorruption(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d, err := blob.NewDisk(root)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = d.Put(ctx, "k", strings.NewReader("old data"), -1)
	require.NoError(t, err)

	// Simulate: a new file (new inode, same size) replaced the data while
	// the metadata still describes the previous one.
	path := filepath.Join(root, "k")
	tmp := filepath.Join(root, "replacement")
	require.NoError(t, os.WriteFile(tmp, []byte("new data"), 0o644))
	require.NoError(t, os.Rename(tmp, path))

	st, err := d.Stat(ctx, "k")
	require.NoError(t, err)
	sum := sha256.Sum256([]byte("new data"))
	require.Equal(t, hex.EncodeToString(sum[:]), st.SHA256)
	rc, err := d.Get(ctx, "k")
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.Equal(t, "new data", string(b))
}

func TestDiskKeyThatIsADirectory(t *testing.T) {
	t.Parallel()
	d, err := blob.NewDisk(t.TempDir())
	require.NoError(t, err)
	ctx := context.Background()
	_, err = d.Put(ctx, "dir/file", strings.NewReader("x"), 1)
	require.NoError(t, err)
	_, err = d.Stat(ctx, "dir")
	require.ErrorIs(t, err, blob.ErrNotFound)
	_, err = d.Get(ctx, "dir")
	require.ErrorIs(t, err, blob.ErrNotFound)
	require.NoError(t, d.Delete(ctx, "dir"))
	_, err = d.Stat(ctx, "dir/file")
	require.NoError(t, err, "deleting a prefix must not touch its objects")
	_, err = d.Stat(ctx, "dir/file/below")
	require.ErrorIs(t, err, blob.ErrNotFound)
}

func TestNewDiskRejectsEmptyRoot(t *testing.T) {
	t.Parallel()
	_, err := blob.NewDisk("")
	require.ErrorContains(t, err, "root is empty")
}

func BenchmarkDiskPutGet(b *testing.B) {
	d, err := blob.NewDisk(b.TempDir())
	require.NoError(b, err)
	ctx := context.Background()
	data := bytes.Repeat([]byte("greffier"), 128<<10) // 1 MiB
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		_, err := d.Put(ctx, "bench/obj", bytes.NewReader(data), int64(len(data)))
		if err != nil {
			b.Fatal(err)
		}
		rc, err := d.Get(ctx, "bench/obj")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}
