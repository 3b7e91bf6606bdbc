package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// metaDir is the hidden tree under the root that mirrors the objects with
// one small JSON file each. It starts with "." so no valid key reaches it.
const metaDir = ".meta"

// Disk stores objects as files under a root directory: the object under
// key "a/b.webm" is the file <root>/a/b.webm, and its SHA-256 lives in
// <root>/.meta/a/b.webm.json. Empty directories left by Delete are kept:
// removing them would race with a concurrent Put into the same directory.
type Disk struct {
	root string
}

var _ Store = (*Disk)(nil)

// NewDisk opens (creating if needed) a disk store rooted at root.
func NewDisk(root string) (*Disk, error) {
	if root == "" {
		return nil, errors.New("blob: disk root is empty; set the blob directory (e.g. <data>/blobs)")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("blob: disk root %q: %w", root, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, metaDir), 0o755); err != nil {
		return nil, fmt.Errorf("blob: create disk root: %w", err)
	}
	return &Disk{root: abs}, nil
}

// diskMeta is what the store remembers about an object beside its bytes.
// Ino and Size tie it to one version of the data file: the metadata is
// renamed into place before the data, so after a crash between the two
// renames the metadata names a different inode and is recognised as stale
// instead of condemning the old data as corrupt.
type diskMeta struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Ino    uint64 `json:"ino"`
}

func (d *Disk) objectPath(key string) string {
	return filepath.Join(d.root, filepath.FromSlash(key))
}

func (d *Disk) metaPath(key string) string {
	return filepath.Join(d.root, metaDir, filepath.FromSlash(key)+".json")
}

// Put writes to a temporary file beside the target, fsyncs it, records its
// metadata, then renames it over the target and fsyncs the directory, so a
// reader sees either the old object or the whole new one.
func (d *Disk) Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	path := d.objectPath(key)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Info{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()

	hr := newHashingReader(ctx, r)
	if _, err := io.Copy(tmp, hr); err != nil {
		return Info{}, fmt.Errorf("blob: put %q: write: %w", key, err)
	}
	if size >= 0 && hr.n != size {
		return Info{}, fmt.Errorf("blob: put %q: read %d bytes, caller announced %d", key, hr.n, size)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("blob: put %q: fsync: %w", key, err)
	}
	fi, err := tmp.Stat()
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("blob: put %q: close: %w", key, err)
	}
	info := Info{Key: key, Size: hr.n, SHA256: hr.sum(), Modified: fi.ModTime()}
	meta, err := json.Marshal(diskMeta{SHA256: info.SHA256, Size: info.Size, Ino: inode(fi)})
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	if err := writeFileAtomic(d.metaPath(key), meta); err != nil {
		return Info{}, fmt.Errorf("blob: put %q: metadata: %w", key, err)
	}
	// Last chance to honour cancellation: after the rename the object is
	// visible, and Put must not report failure for a visible object.
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return Info{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	committed = true
	if err := syncDir(dir); err != nil {
		return Info{}, fmt.Errorf("blob: put %q: fsync directory: %w", key, err)
	}
	return info, nil
}

// Get opens the object; its reader fails with ErrCorrupt at EOF if the
// bytes no longer match the hash recorded at Put.
func (d *Disk) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	f, fi, err := d.open(ctx, key)
	if err != nil {
		return nil, err
	}
	// Stale or missing metadata (a crash between renames, a file copied in
	// by hand) leaves nothing to verify against: serve the bytes as they are.
	m, _ := d.readMeta(key, fi)
	return newVerifyingReader(f, key, m.SHA256), nil
}

// Stat describes the object from its metadata, hashing the file only when
// the metadata is missing or stale.
func (d *Disk) Stat(ctx context.Context, key string) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("blob: stat %q: %w", key, err)
	}
	fi, err := os.Stat(d.objectPath(key))
	if err != nil {
		return Info{}, d.notFound("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("blob: stat %q: %w", key, ErrNotFound)
	}
	return d.info(ctx, key, fi)
}

func (d *Disk) info(ctx context.Context, key string, fi fs.FileInfo) (Info, error) {
	info := Info{Key: key, Size: fi.Size(), Modified: fi.ModTime()}
	if m, ok := d.readMeta(key, fi); ok {
		info.SHA256 = m.SHA256
		return info, nil
	}
	f, err := os.Open(d.objectPath(key))
	if err != nil {
		return Info{}, d.notFound("stat", key, err)
	}
	defer f.Close()
	hr := newHashingReader(ctx, f)
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return Info{}, fmt.Errorf("blob: stat %q: hash: %w", key, err)
	}
	info.SHA256 = hr.sum()
	return info, nil
}

// readMeta returns the recorded metadata if it belongs to the file fi.
func (d *Disk) readMeta(key string, fi fs.FileInfo) (diskMeta, bool) {
	b, err := os.ReadFile(d.metaPath(key))
	if err != nil {
		return diskMeta{}, false
	}
	var m diskMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return diskMeta{}, false
	}
	if m.Size != fi.Size() || m.Ino != inode(fi) || len(m.SHA256) != 2*sha256.Size {
		return diskMeta{}, false
	}
	if _, err := hex.DecodeString(m.SHA256); err != nil {
		return diskMeta{}, false
	}
	return m, true
}

// Delete removes the object and its metadata; a missing key is not an error.
func (d *Disk) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob: delete %q: %w", key, err)
	}
	path := d.objectPath(key)
	if fi, err := os.Lstat(path); err == nil && fi.IsDir() {
		return nil // a directory is a key prefix, not an object
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: delete %q: %w", key, err)
	}
	if err := os.Remove(d.metaPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: delete %q: metadata: %w", key, err)
	}
	return nil
}

// List walks only the directory the prefix points into, skipping the
// metadata tree and temporary files, and sorts by key as S3 does.
func (d *Disk) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	start := d.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = d.objectPath(prefix[:i])
	}
	var out []Info
	err := filepath.WalkDir(start, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // vanished, or the prefix names no directory
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(de.Name(), ".") && path != start {
			if de.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(d.root, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if de.IsDir() {
			if path != start && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !de.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		info, err := d.info(ctx, key, fi)
		if errors.Is(err, ErrNotFound) {
			return nil // deleted while we walked
		}
		if err != nil {
			return err
		}
		out = append(out, info)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blob: list %q: %w", prefix, err)
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (d *Disk) notFound(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("blob: %s %q: %w", op, key, ErrNotFound)
	}
	return fmt.Errorf("blob: %s %q: %w", op, key, err)
}

// validatePrefix accepts "" and any prefix that some valid key starts with,
// which rules out prefixes that would walk out of the root.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := ValidateKey(prefix + "x"); err != nil {
		return fmt.Errorf("blob: list prefix %q: no valid key can start with it: %w", prefix, err)
	}
	return nil
}

func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// writeFileAtomic replaces path with data through a synced temporary file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// DeletePrefix deletes every object under prefix, then, for a prefix
// ending in "/", the directories that held them in the object and
// metadata trees, with any temporary file a crashed Put left there.
func (d *Disk) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	if prefix == "" {
		return 0, errors.New("blob: delete prefix: the empty prefix would delete everything")
	}
	list, err := d.List(ctx, prefix)
	if err != nil {
		return 0, err
	}
	for i, info := range list {
		if err := d.Delete(ctx, info.Key); err != nil {
			return i, err
		}
	}
	if strings.HasSuffix(prefix, "/") {
		dir := strings.TrimSuffix(prefix, "/")
		for _, p := range []string{d.objectPath(dir), filepath.Join(d.root, metaDir, filepath.FromSlash(dir))} {
			if err := os.RemoveAll(p); err != nil {
				return len(list), fmt.Errorf("blob: delete prefix %q: %w", prefix, err)
			}
		}
	}
	return len(list), nil
}

var _ Ranger = (*Disk)(nil)

// open opens the object's file for reading.
func (d *Disk) open(ctx context.Context, key string) (*os.File, os.FileInfo, error) {
	if err := ValidateKey(key); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("blob: get %q: %w", key, err)
	}
	f, err := os.Open(d.objectPath(key))
	if err != nil {
		return nil, nil, d.notFound("get", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("blob: get %q: %w", key, err)
	}
	if fi.IsDir() {
		_ = f.Close()
		return nil, nil, fmt.Errorf("blob: get %q: %w", key, ErrNotFound)
	}
	return f, fi, nil
}

// GetRange reads part of the object, unverified.
func (d *Disk) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	f, _, err := d.open(ctx, key)
	if err != nil {
		return nil, err
	}
	if n < 0 {
		n = 1<<63 - 1 - off
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, off, n), f}, nil
}
