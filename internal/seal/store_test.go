package seal_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/seal"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/testenv"
)

type rawStore interface {
	blob.Store
	blob.Ranger
}

// eachBackend runs fn on SQLite with a disk store and on Postgres with S3
// (versitygw), both real.
func eachBackend(t *testing.T, fn func(t *testing.T, db *store.Store, raw rawStore)) {
	t.Run("sqlite+disk", func(t *testing.T) {
		dir := t.TempDir()
		db, err := store.Open(t.Context(), store.Config{SQLitePath: filepath.Join(dir, "g.db")})
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		disk, err := blob.NewDisk(filepath.Join(dir, "blobs"))
		require.NoError(t, err)
		fn(t, db, disk)
	})
	t.Run("postgres+s3", func(t *testing.T) {
		db, err := store.Open(t.Context(), store.Config{PostgresURL: testenv.Postgres(t)})
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		cfg := testenv.S3(t)
		cfg.SpoolDir = t.TempDir()
		s3, err := blob.NewS3(t.Context(), cfg)
		require.NoError(t, err)
		fn(t, db, s3)
	})
}

func newKEK(t *testing.T) *seal.KEK {
	t.Helper()
	k := make([]byte, seal.KeySize)
	_, _ = rand.Read(k)
	kek, err := seal.NewKEK(k)
	require.NoError(t, err)
	return kek
}

// meetingObjects are one meeting's objects as Greffier writes them, each
// starting with its format's signature.
func meetingObjects(id string) map[string][]byte {
	noise := make([]byte, 3*seal.ChunkSize+1234)
	_, _ = rand.Read(noise)
	webm := append([]byte("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01OpusHead\x01\x01"), noise...)
	ogg := append([]byte("OggS\x00\x02\x00\x00OpusHead"), noise[:5000]...)
	return map[string][]byte{
		layout.Track(id, "trk_1"):              webm,
		layout.TrackChunk(id, "trk_1", 1):      webm[:70000],
		layout.SpeechAudio(id, "trk_1", 1000):  ogg,
		layout.ArchiveWebM(id):                 webm,
		layout.Minutes(id, 1):                  []byte(`{"meeting":"` + id + `","segments":[{"text":"bonjour"}]}`),
		layout.RecordingJournal(id, "trk_1"):   []byte(`{"chunks":[1]}`),
		layout.SpeakerAudio(id, "trk_1"):       []byte("fLaC\x00\x00\x00\x22"),
		"meetings/" + id + "/empty/object.bin": {},
	}
}

// signatures are what no stored byte may start with or hold.
var signatures = [][]byte{{0x1a, 0x45, 0xdf, 0xa3}, []byte("OpusHead"), []byte("OggS"), []byte("fLaC"), []byte(`"segments"`)}

func putAll(t *testing.T, s blob.Store, objects map[string][]byte) {
	t.Helper()
	for key, b := range objects {
		info, err := s.Put(t.Context(), key, bytes.NewReader(b), int64(len(b)))
		require.NoError(t, err, key)
		sum := sha256.Sum256(b)
		require.Equal(t, hex.EncodeToString(sum[:]), info.SHA256, "%s: Put reports the plaintext's SHA-256", key)
		require.Equal(t, int64(len(b)), info.Size, key)
	}
}

func get(t *testing.T, s blob.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), key)
	require.NoError(t, err, key)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err, key)
	return b
}

// rawObjects reads every object as the store beneath holds it.
func rawObjects(t *testing.T, raw blob.Store) map[string][]byte {
	t.Helper()
	infos, err := raw.List(t.Context(), "")
	require.NoError(t, err)
	out := map[string][]byte{}
	for _, info := range infos {
		out[info.Key] = get(t, raw, info.Key)
	}
	return out
}

func TestEveryStoredObjectIsSealedAndReadsBackWhole(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *store.Store, raw rawStore) {
		ctx := t.Context()
		kek := newKEK(t)
		sealed := seal.NewStore(raw, seal.NewKeyring(kek, db))
		objects := meetingObjects("mtg_sealed")
		putAll(t, sealed, objects)

		stored := rawObjects(t, raw)
		require.Len(t, stored, len(objects))
		for key, b := range stored {
			require.True(t, seal.IsSealed(b), "%s is stored sealed", key)
			require.NotEqual(t, byte('{'), b[0], key)
			for _, sig := range signatures {
				require.False(t, bytes.Contains(b, sig), "%s holds %q in clear", key, sig)
			}
		}

		for key, want := range objects {
			require.True(t, bytes.Equal(want, get(t, sealed, key)), key)
			info, err := sealed.Stat(ctx, key)
			require.NoError(t, err)
			sum := sha256.Sum256(want)
			require.Equal(t, hex.EncodeToString(sum[:]), info.SHA256, "%s: Stat reports the plaintext's SHA-256", key)
			require.Equal(t, int64(len(want)), info.Size, key)
		}
		list, err := sealed.List(ctx, layout.MeetingPrefix("mtg_sealed"))
		require.NoError(t, err)
		require.Len(t, list, len(objects)-1) // the journal lives outside the meeting's tree
		for _, info := range list {
			require.Equal(t, int64(len(objects[info.Key])), info.Size, info.Key)
		}

		// Ranges read only their chunks, and equal slices of the whole.
		track := objects[layout.Track("mtg_sealed", "trk_1")]
		for _, r := range [][2]int64{{0, 1}, {5, 100}, {seal.ChunkSize - 3, 10}, {seal.ChunkSize, seal.ChunkSize}, {2*seal.ChunkSize + 7, -1}, {int64(len(track)) - 1, 1}} {
			rc, err := sealed.GetRange(ctx, layout.Track("mtg_sealed", "trk_1"), r[0], r[1])
			require.NoError(t, err)
			got, err := io.ReadAll(rc)
			require.NoError(t, rc.Close())
			require.NoError(t, err)
			end := int64(len(track))
			if r[1] >= 0 {
				end = r[0] + r[1]
			}
			require.Equal(t, track[r[0]:end], got, "range %v", r)
		}

		// Another KEK over the same database opens nothing.
		other := seal.NewStore(raw, seal.NewKeyring(newKEK(t), db))
		_, err = other.Get(ctx, layout.Minutes("mtg_sealed", 1))
		require.ErrorContains(t, err, "wrapped by key-encryption key "+kek.ID)

		// The database holds the data key only wrapped.
		dk, err := db.DataKey(ctx, "mtg_sealed")
		require.NoError(t, err)
		require.Equal(t, kek.ID, dk.KEKID)
		clear, err := kek.Unwrap("mtg_sealed", dk.Wrapped)
		require.NoError(t, err)
		require.False(t, bytes.Contains(dk.Wrapped, clear))

		// A damaged object is damage, as the stores beneath report it.
		key := layout.Track("mtg_sealed", "trk_1")
		b := bytes.Clone(stored[key])
		b[seal.HeaderSize+10] ^= 1
		_, err = raw.Put(ctx, key, bytes.NewReader(b), int64(len(b)))
		require.NoError(t, err)
		rc, err := sealed.Get(ctx, key)
		require.NoError(t, err)
		_, err = io.ReadAll(rc)
		_ = rc.Close()
		require.ErrorIs(t, err, blob.ErrCorrupt)
		require.ErrorIs(t, err, seal.ErrOpen)
		// A range reads only its chunks: one clear of the damage opens,
		// one over it does not.
		rc, err = sealed.GetRange(ctx, key, 2*seal.ChunkSize+7, -1)
		require.NoError(t, err)
		got, err := io.ReadAll(rc)
		_ = rc.Close()
		require.NoError(t, err)
		require.Equal(t, track[2*seal.ChunkSize+7:], got)
		rc, err = sealed.GetRange(ctx, key, 3, 10)
		require.NoError(t, err)
		_, err = io.ReadAll(rc)
		_ = rc.Close()
		require.ErrorIs(t, err, blob.ErrCorrupt)
	})
}

func TestDeletingAMeetingLeavesACopyOfItsObjectsUnreadable(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *store.Store, raw rawStore) {
		ctx := t.Context()
		kek := newKEK(t)
		keys := seal.NewKeyring(kek, db)
		sealed := seal.NewStore(raw, keys)
		gone, kept := meetingObjects("mtg_gone"), meetingObjects("mtg_kept")
		putAll(t, sealed, gone)
		putAll(t, sealed, kept)
		backup := rawObjects(t, raw) // the bucket or disk as copied before the deletion

		// What the deletion job does: objects, then rows (the key's with them).
		for _, prefix := range []string{layout.MeetingPrefix("mtg_gone"), layout.RecordingJournals + "mtg_gone/"} {
			_, err := sealed.DeletePrefix(ctx, prefix)
			require.NoError(t, err)
		}
		require.NoError(t, db.DeleteMeeting(ctx, "mtg_gone"))
		_, err := db.DataKey(ctx, "mtg_gone")
		require.ErrorIs(t, err, store.ErrNotFound)

		// The copy is put back: nothing left in the database opens it, not
		// through the store and not with any key the database still holds.
		for key, b := range backup {
			_, err := raw.Put(ctx, key, bytes.NewReader(b), int64(len(b)))
			require.NoError(t, err)
		}
		for _, s := range []blob.Store{sealed, seal.NewStore(raw, seal.NewKeyring(kek, db))} {
			for key := range gone {
				_, err := s.Get(ctx, key)
				require.ErrorIs(t, err, seal.ErrNoKey, key)
			}
		}
		left, err := db.DataKeys(ctx, "", true)
		require.NoError(t, err)
		require.NotEmpty(t, left)
		for _, dk := range left {
			clear, err := kek.Unwrap(dk.MeetingID, dk.Wrapped)
			require.NoError(t, err)
			a, err := seal.NewAEAD(clear)
			require.NoError(t, err)
			for key := range gone {
				o, err := seal.NewOpener(a, key, bytes.NewReader(backup[key]))
				require.NoError(t, err)
				_, err = io.ReadAll(o)
				require.ErrorIs(t, err, seal.ErrOpen, "%s under the key of %s", key, dk.MeetingID)
			}
		}
		for key, want := range kept {
			require.True(t, bytes.Equal(want, get(t, sealed, key)), "the other meeting reads on: %s", key)
		}
		// Listing across meetings still works, the shredded one's objects
		// described without a checksum.
		journals, err := sealed.List(ctx, layout.RecordingJournals)
		require.NoError(t, err)
		require.Len(t, journals, 2)
		for _, info := range journals {
			if seal.MeetingOf(info.Key) == "mtg_gone" {
				require.Empty(t, info.SHA256)
				require.Equal(t, int64(len(gone[info.Key])), info.Size)
			} else {
				require.NotEmpty(t, info.SHA256)
			}
		}
	})
}

func TestRewrapKeepsEveryDownloadIdenticalAndRewritesNoObject(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *store.Store, raw rawStore) {
		ctx := t.Context()
		old, next := newKEK(t), newKEK(t)
		before := seal.NewStore(raw, seal.NewKeyring(old, db))
		all := map[string][]byte{}
		for _, id := range []string{"mtg_a", "mtg_b", "mtg_c"} {
			objects := meetingObjects(id)
			putAll(t, before, objects)
			for k, v := range objects {
				all[k] = v
			}
		}
		stored := rawObjects(t, raw)

		n, err := seal.Rewrap(ctx, db, old, next)
		require.NoError(t, err)
		require.Equal(t, 3, n)
		n, err = seal.Rewrap(ctx, db, old, next)
		require.NoError(t, err)
		require.Zero(t, n, "a second run finds nothing left to re-wrap")
		unknown, err := seal.Unknown(ctx, db, next)
		require.NoError(t, err)
		require.Empty(t, unknown)

		after := seal.NewStore(raw, seal.NewKeyring(next, db))
		for key, want := range all {
			require.True(t, bytes.Equal(want, get(t, after, key)), key)
		}
		require.Equal(t, stored, rawObjects(t, raw), "no stored object was rewritten")
		_, err = seal.NewStore(raw, seal.NewKeyring(old, db)).Get(ctx, layout.Minutes("mtg_a", 1))
		require.ErrorContains(t, err, "wrapped by key-encryption key "+next.ID)
	})
}

func TestObjectsOutsideMeetingsAndOlderClearObjectsPassThrough(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(context.Background(), store.Config{SQLitePath: filepath.Join(dir, "g.db")})
	require.NoError(t, err)
	defer db.Close()
	disk, err := blob.NewDisk(filepath.Join(dir, "blobs"))
	require.NoError(t, err)
	_, err = disk.Put(t.Context(), layout.Minutes("mtg_old", 1), bytes.NewReader([]byte(`{"old":true}`)), -1)
	require.NoError(t, err)
	sealed := seal.NewStore(disk, seal.NewKeyring(newKEK(t), db))
	require.Equal(t, `{"old":true}`, string(get(t, sealed, layout.Minutes("mtg_old", 1))), "stored before sealing was on")
	info, err := sealed.Stat(t.Context(), layout.Minutes("mtg_old", 1))
	require.NoError(t, err)
	require.Equal(t, int64(12), info.Size)
	_, err = sealed.Put(t.Context(), "readyz/probe", bytes.NewReader([]byte("ok")), 2)
	require.NoError(t, err)
	require.Equal(t, "ok", string(get(t, disk, "readyz/probe")))
}
