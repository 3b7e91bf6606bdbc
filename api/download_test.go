package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"errors"
	"github.com/greffier/greffier/api"
	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/faulttest"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/testenv"
	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/internal/upload"
	"github.com/greffier/greffier/jobs"
	"github.com/greffier/greffier/livekit"
)

const apiToken = "test-token"

// damager changes stored bytes behind the store's back, keeping the
// SHA-256 recorded at Put, as bit rot or a bad copy would.
type damager interface {
	damage(t *testing.T, key string, at int64)
	restore(t *testing.T, key string, data []byte)
}

type diskDamager struct{ root string }

func (d diskDamager) damage(t *testing.T, key string, at int64) {
	f, err := os.OpenFile(filepath.Join(d.root, filepath.FromSlash(key)), os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, at)
	require.NoError(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, at)
	require.NoError(t, err)
}

func (d diskDamager) restore(t *testing.T, key string, data []byte) {
	// Written in place, as a restore from a backup would: same inode, so
	// the recorded SHA-256 still applies.
	require.NoError(t, os.WriteFile(filepath.Join(d.root, filepath.FromSlash(key)), data, 0o644))
}

type s3Damager struct {
	raw    *minio.Client
	bucket string
}

func (s s3Damager) put(t *testing.T, key string, data []byte, sum string) {
	_, err := s.raw.PutObject(context.Background(), s.bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{UserMetadata: map[string]string{"Sha256": sum}})
	require.NoError(t, err)
}

func (s s3Damager) damage(t *testing.T, key string, at int64) {
	ctx := context.Background()
	st, err := s.raw.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	require.NoError(t, err)
	obj, err := s.raw.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	require.NoError(t, err)
	data, err := io.ReadAll(obj)
	require.NoError(t, err)
	data[at] ^= 0xff
	s.put(t, key, data, st.UserMetadata["Sha256"])
}

func (s s3Damager) restore(t *testing.T, key string, data []byte) {
	s.put(t, key, data, sha(data))
}

type bundle struct {
	api    *api.API
	srv    *httptest.Server
	store  *store.Store
	blobs  blob.Store
	dmg    damager
	signer *token.Signer
	media  *fakeMedia
	m      store.Meeting
}

// setup serves the API over a real database and a real blob store: the
// disk store on SQLite, or S3 (versitygw) on Postgres.
func setup(t *testing.T, onS3 bool) *bundle {
	t.Helper()
	if onS3 {
		return setupOn(t, store.Postgres, true)
	}
	return setupOn(t, store.SQLite, false)
}

// setupOn serves the API over a real database of dialect d and a real blob
// store, on disk or in S3 (versitygw), with one meeting created.
func setupOn(t *testing.T, d store.Dialect, onS3 bool) *bundle {
	t.Helper()
	ctx := context.Background()
	scfg := store.Config{SQLitePath: filepath.Join(t.TempDir(), "g.db")}
	if d == store.Postgres {
		scfg = store.Config{PostgresURL: testenv.Postgres(t)}
	}
	var (
		blobs blob.Store
		dmg   damager
	)
	if onS3 {
		cfg := testenv.S3(t)
		s, err := blob.NewS3(ctx, cfg)
		require.NoError(t, err)
		raw, err := minio.New(cfg.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
			Region: cfg.Region, BucketLookup: minio.BucketLookupPath})
		require.NoError(t, err)
		blobs, dmg = s, s3Damager{raw: raw, bucket: cfg.Bucket}
	} else {
		root := t.TempDir()
		d, err := blob.NewDisk(root)
		require.NoError(t, err)
		blobs, dmg = d, diskDamager{root: root}
	}
	st, err := store.Open(ctx, scfg)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	signer, err := token.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	media := &fakeMedia{store: st, closed: 1}
	uploads, err := upload.New(t.TempDir(), 1<<20)
	require.NoError(t, err)
	a, err := api.New(api.Config{Token: apiToken, PublicURL: "https://greffier.example.org/base/"}, api.Deps{Store: st, Blobs: blobs, Ender: media, Rerunner: media,
		Sessions: media, Signer: signer, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Deleter: media, Uploads: uploads, Importer: media, LiveKit: fakeRooms{st, livekit.NewWebhooks("lk-key", "lk-secret")}})
	require.NoError(t, err)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	m, err := st.CreateMeeting(ctx, "Conseil", "fr")
	require.NoError(t, err)
	return &bundle{api: a, srv: srv, store: st, blobs: blobs, dmg: dmg, signer: signer, media: media, m: m}
}

// fakeMedia stands for the pipeline and the media sessions, the API's own
// seams: ending and re-running move the meeting's state in the store as
// the pipeline's transaction would (without enqueuing anything), and
// Disconnect records whom it was asked to close and says it closed
// closed sessions.
type fakeMedia struct {
	store  *store.Store
	closed int

	mu           sync.Mutex
	disconnected []disconnect
}

type disconnect struct{ meetingID, identity, tokenID string }

// DeleteMeeting moves the meeting to deleting as the pipeline's
// transaction would; no job removes it.
func (f *fakeMedia) DeleteMeeting(ctx context.Context, meetingID string) (store.Meeting, error) {
	return f.store.StartDeleting(ctx, meetingID)
}

// CheckFormat reads nothing: every upload is refused as unsupported.
func (f *fakeMedia) CheckFormat(string) (audio.Format, error) {
	return audio.FormatUnknown, jobs.ErrUnsupportedFormat
}

// StartImport is not reached: CheckFormat refused every upload.
func (f *fakeMedia) StartImport(context.Context, jobs.ImportRequest) (store.Meeting, error) {
	return store.Meeting{}, errors.New("fakeMedia imports nothing")
}

func (f *fakeMedia) EndMeeting(ctx context.Context, meetingID string) (store.Meeting, error) {
	return f.store.Transition(ctx, meetingID, store.MeetingEnded, "")
}

func (f *fakeMedia) Rerun(ctx context.Context, meetingID string) (store.Meeting, error) {
	m, err := f.store.Meeting(ctx, meetingID)
	if err != nil {
		return store.Meeting{}, err
	}
	if !m.State.Finished() {
		return store.Meeting{}, &store.TransitionError{MeetingID: meetingID, From: m.State, To: store.MeetingEnded}
	}
	return f.store.Transition(ctx, meetingID, store.MeetingEnded, "")
}

func (f *fakeMedia) Disconnect(_ context.Context, meetingID, identity, tokenID string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.disconnected = append(f.disconnected, disconnect{meetingID, identity, tokenID})
	return f.closed, nil
}

func (f *fakeMedia) disconnects() []disconnect {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.disconnected)
}

// storeTrack stores data as a finished track of the bundle's meeting.
func (b *bundle) storeTrack(t *testing.T, identity string, data []byte) store.Track {
	t.Helper()
	ctx := context.Background()
	tr := store.Track{ID: store.NewID("trk"), MeetingID: b.m.ID, Identity: identity, SSRC: 1}
	tr.BlobKey = layout.Track(b.m.ID, tr.ID)
	info, err := b.blobs.Put(ctx, tr.BlobKey, bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.NoError(t, b.store.CreateTrack(ctx, tr))
	tr.State, tr.DurationMS, tr.Size, tr.SHA256 = store.TrackStored, 9000, info.Size, info.SHA256
	require.NoError(t, b.store.FinishTrack(ctx, tr))
	return tr
}

type answer struct {
	status int
	header http.Header
	body   []byte
	err    error // reading the body
}

func (b *bundle) get(t *testing.T, path string, header ...string) answer {
	t.Helper()
	return b.do(t, "GET", path, "", append([]string{"Authorization", "Bearer " + apiToken}, header...)...)
}

// do sends a request with body (none if "") and the header pairs given,
// and reads the whole answer.
func (b *bundle) do(t *testing.T, method, path, body string, header ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, b.srv.URL+path, rd)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: got, err: err}
}

func errorCode(t *testing.T, a answer) string {
	t.Helper()
	require.NoError(t, a.err, "an error answer is whole")
	var e struct {
		Error struct{ Code, Message string }
	}
	require.NoError(t, json.Unmarshal(a.body, &e), "%s", a.body)
	require.NotEmpty(t, e.Error.Message)
	return e.Error.Code
}

type listedTrack struct {
	ID      string `json:"id"`
	URL     string `json:"url"`
	Damaged *struct {
		Key, Detail string
	} `json:"damaged"`
}

func (b *bundle) tracks(t *testing.T) map[string]listedTrack {
	t.Helper()
	a := b.get(t, "/v1/meetings/"+b.m.ID+"/tracks")
	require.Equal(t, http.StatusOK, a.status)
	var list struct {
		Tracks []listedTrack `json:"tracks"`
		Timing string        `json:"timing"`
	}
	require.NoError(t, json.Unmarshal(a.body, &list))
	require.Contains(t, list.Timing, "ffmpeg -i track.webm out.wav", "the listing warns about the gaps")
	out := map[string]listedTrack{}
	for _, tr := range list.Tracks {
		out[tr.ID] = tr
	}
	return out
}

// TestFaultDamagedRecordingDownloadFailsVisibly flips one byte of stored
// tracks, on disk and in S3, and downloads them: a track larger than what a
// download holds back is cut short (the client sees fewer bytes than
// Content-Length, curl exits non-zero), a small one or one known damaged
// is refused with 409 "damaged" before any byte; a range of a damaged
// track is never served; the listing and the meeting say which track is
// damaged; once the bytes are restored the track downloads again.
func TestFaultDamagedRecordingDownloadFailsVisibly(t *testing.T) {
	t.Parallel()
	for _, onS3 := range []bool{false, true} {
		t.Run(map[bool]string{false: "disk", true: "s3"}[onS3], func(t *testing.T) {
			t.Parallel()
			b := setup(t, onS3)
			bigData, smallData, rangeData := randomBytes(3<<20+12345), randomBytes(20_000), randomBytes(1<<20)
			big, small, ranged := b.storeTrack(t, "alice", bigData), b.storeTrack(t, "bob", smallData), b.storeTrack(t, "carol", rangeData)
			good := b.storeTrack(t, "dave", randomBytes(5000))
			faults := 0
			// Near the end, so that a check made only after sending would
			// have sent almost everything.
			b.dmg.damage(t, big.BlobKey, int64(len(bigData))-100)
			b.dmg.damage(t, small.BlobKey, 10)
			b.dmg.damage(t, ranged.BlobKey, int64(len(rangeData))-5)
			faults += 3

			// The first download of a large damaged track is cut short.
			a := b.get(t, "/v1/meetings/"+b.m.ID+"/tracks/"+big.ID+".webm")
			require.Equal(t, http.StatusOK, a.status, "headers go before the end of the object is read")
			require.Error(t, a.err, "the body must not end cleanly")
			require.ErrorIs(t, a.err, io.ErrUnexpectedEOF)
			require.Less(t, len(a.body), len(bigData))
			require.Equal(t, fmt.Sprint(len(bigData)), a.header.Get("Content-Length"))
			// curl, as an archivist would use it, fails too.
			if curl, err := exec.LookPath("curl"); err == nil {
				out := filepath.Join(t.TempDir(), "big.webm")
				err := exec.Command(curl, "-sSf", "-o", out, "-H", "Authorization: Bearer "+apiToken,
					b.srv.URL+"/v1/meetings/"+b.m.ID+"/tracks/"+big.ID+".webm").Run()
				require.Error(t, err, "curl must exit non-zero for a damaged track")
			}

			// A small damaged track is refused before anything is sent.
			a = b.get(t, "/v1/meetings/"+b.m.ID+"/tracks/"+small.ID+".webm")
			require.Equal(t, http.StatusConflict, a.status)
			require.Equal(t, "damaged", errorCode(t, a))

			// A range of a damaged track, even one far from the damage, is
			// not served as good.
			a = b.get(t, "/v1/meetings/"+b.m.ID+"/tracks/"+ranged.ID+".webm", "Range", "bytes=0-99")
			require.Equal(t, http.StatusConflict, a.status, "%s", a.body)
			require.Equal(t, "damaged", errorCode(t, a))

			// The damage shows where the tracks are listed and in the meeting.
			listed := b.tracks(t)
			lost := 0
			for _, tr := range []store.Track{big, small, ranged} {
				if listed[tr.ID].Damaged == nil {
					lost++ // a damaged recording the user is not told of
				}
			}
			require.Zero(t, lost, "every damaged track is listed as damaged: %+v", listed)
			require.Nil(t, listed[good.ID].Damaged)
			require.Contains(t, listed[big.ID].Damaged.Detail, "SHA-256")
			var mj struct {
				Damaged []struct{ Key string } `json:"damaged"`
			}
			a = b.get(t, "/v1/meetings/"+b.m.ID)
			require.NoError(t, json.Unmarshal(a.body, &mj))
			require.Len(t, mj.Damaged, 3)

			// Known damage is refused at once, ranges and whole alike.
			for _, hdr := range [][]string{nil, {"Range", "bytes=100-"}} {
				a = b.get(t, "/v1/meetings/"+b.m.ID+"/tracks/"+big.ID+".webm", hdr...)
				require.Equal(t, http.StatusConflict, a.status)
				require.Equal(t, "damaged", errorCode(t, a))
			}

			// Restored from a backup, it verifies again and downloads.
			b.dmg.restore(t, big.BlobKey, bigData)
			a = b.get(t, "/v1/meetings/"+b.m.ID+"/tracks/"+big.ID+".webm")
			require.NoError(t, a.err)
			require.Equal(t, http.StatusOK, a.status)
			require.Equal(t, sha(bigData), sha(a.body))
			require.Nil(t, b.tracks(t)[big.ID].Damaged, "the damage record is cleared")
			a = b.get(t, "/v1/meetings/"+b.m.ID+"/tracks/"+good.ID+".webm")
			require.Equal(t, http.StatusOK, a.status)
			require.NoError(t, a.err)

			faulttest.Report(t, faulttest.FaultsInjected, float64(faults))
			faulttest.Report(t, faulttest.RecordingsLost, float64(lost))
		})
	}
}

// Every download answers single byte ranges, so a large file can be
// resumed: 206 with Content-Range, the suffix and open forms, 416 past
// the end, If-Range by ETag, and the whole file for several ranges.
func TestDownloadsAnswerRanges(t *testing.T) {
	t.Parallel()
	for _, onS3 := range []bool{false, true} {
		t.Run(map[bool]string{false: "disk", true: "s3"}[onS3], func(t *testing.T) {
			t.Parallel()
			b := setup(t, onS3)
			data := randomBytes(700_000)
			tr := b.storeTrack(t, "alice", data)
			mix := randomBytes(300_000)
			_, err := b.blobs.Put(context.Background(), layout.ArchiveMix(b.m.ID), bytes.NewReader(mix), int64(len(mix)))
			require.NoError(t, err)
			for _, f := range []struct {
				path string
				data []byte
			}{
				{"/v1/meetings/" + b.m.ID + "/tracks/" + tr.ID + ".webm", data},
				{"/v1/meetings/" + b.m.ID + "/mix.flac", mix},
			} {
				size := len(f.data)
				whole := b.get(t, f.path)
				require.Equal(t, http.StatusOK, whole.status)
				require.Equal(t, "bytes", whole.header.Get("Accept-Ranges"))
				etag := whole.header.Get("ETag")
				require.Equal(t, `"`+sha(f.data)+`"`, etag)

				// Resume after a cut: the rest, from where the cut left off.
				cut := size/2 + 7
				a := b.get(t, f.path, "Range", fmt.Sprintf("bytes=%d-", cut), "If-Range", etag)
				require.NoError(t, a.err)
				require.Equal(t, http.StatusPartialContent, a.status)
				require.Equal(t, fmt.Sprintf("bytes %d-%d/%d", cut, size-1, size), a.header.Get("Content-Range"))
				require.Equal(t, sha(f.data), sha(append(bytes.Clone(f.data[:cut]), a.body...)))

				for _, c := range []struct {
					spec     string
					from, to int
				}{
					{"bytes=0-0", 0, 0},
					{"bytes=100-299999", 100, 299999},
					{"bytes=-1000", size - 1000, size - 1},
					{fmt.Sprintf("bytes=%d-%d", size-10, size+100), size - 10, size - 1},
				} {
					a := b.get(t, f.path, "Range", c.spec)
					require.NoError(t, a.err)
					require.Equal(t, http.StatusPartialContent, a.status, c.spec)
					require.Equal(t, fmt.Sprintf("bytes %d-%d/%d", c.from, c.to, size), a.header.Get("Content-Range"), c.spec)
					require.Equal(t, f.data[c.from:c.to+1], a.body, c.spec)
				}
				a = b.get(t, f.path, "Range", fmt.Sprintf("bytes=%d-", size))
				require.Equal(t, http.StatusRequestedRangeNotSatisfiable, a.status)
				require.Equal(t, fmt.Sprintf("bytes */%d", size), a.header.Get("Content-Range"))
				// A stale If-Range, or several ranges: the whole file.
				for _, hdr := range [][]string{
					{"Range", "bytes=0-9", "If-Range", `"0000"`},
					{"Range", "bytes=0-9,20-29"},
				} {
					a = b.get(t, f.path, hdr...)
					require.Equal(t, http.StatusOK, a.status, hdr)
					require.Equal(t, f.data, a.body)
				}
				a = b.get(t, f.path, "If-None-Match", etag)
				require.Equal(t, http.StatusNotModified, a.status)
			}
		})
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	_, _ = r.Read(b)
	return b
}
