package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/seal"
	"github.com/greffier/greffier/internal/store"
)

// hashingWriter is a client that hashes what it is sent and keeps none
// of it, so only the server's memory is measured.
type hashingWriter struct {
	h      http.Header
	status int
	hash   interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func (w *hashingWriter) Header() http.Header         { return w.h }
func (w *hashingWriter) WriteHeader(status int)      { w.status = status }
func (w *hashingWriter) Write(p []byte) (int, error) { return w.hash.Write(p) }

// BenchmarkDownloadSealedTrack measures a full (non-range) download of a
// 64 MiB track sealed at rest on disk: bytes allocated per download
// (B/op) and the largest heap seen while it runs, against the object's
// size, to tell whether the download streams or holds the object.
func BenchmarkDownloadSealedTrack(b *testing.B) {
	const size = 64 << 20
	ctx := context.Background()
	var blobs blob.Store
	st, h, m := newBenchAPI(b, func(disk blob.Store, st *store.Store) blob.Store {
		kek, err := seal.NewKEK(bytes.Repeat([]byte{9}, 32))
		if err != nil {
			b.Fatal(err)
		}
		blobs = seal.NewStore(disk, seal.NewKeyring(kek, st))
		return blobs
	})
	data := make([]byte, size)
	_, _ = rand.Read(data)
	want := sha256.Sum256(data)
	tr := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: "alice", SSRC: 1}
	tr.BlobKey = layout.Track(m.ID, tr.ID)
	info, err := blobs.Put(ctx, tr.BlobKey, bytes.NewReader(data), size)
	if err != nil {
		b.Fatal(err)
	}
	data = nil
	if err := st.CreateTrack(ctx, tr); err != nil {
		b.Fatal(err)
	}
	tr.State, tr.DurationMS, tr.Size, tr.SHA256 = store.TrackStored, 9000, info.Size, info.SHA256
	if err := st.FinishTrack(ctx, tr); err != nil {
		b.Fatal(err)
	}

	// The heap's peak, sampled by a goroutine while downloads run.
	var peak uint64
	stop, done := make(chan struct{}), make(chan struct{})
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			default:
			}
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			runtime.Gosched()
		}
	}()
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", "/v1/meetings/"+m.ID+"/tracks/"+tr.ID+".webm", nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		w := &hashingWriter{h: http.Header{}, hash: sha256.New()}
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
		if got := w.hash.Sum(nil); !bytes.Equal(got, want[:]) {
			b.Fatalf("downloaded %s, stored %s", hex.EncodeToString(got), hex.EncodeToString(want[:]))
		}
	}
	close(stop)
	<-done
	b.ReportMetric(float64(int64(peak)-int64(base.HeapInuse))/(1<<20), "peak-heap-MiB")
}
