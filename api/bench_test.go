package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greffier/greffier/api"
	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
)

// BenchmarkAuthenticatedRead measures what a key costs a request: a
// meeting read with the bootstrap key (no lookup) and with a stored key
// (one lookup by hash, a last-use write at most once a minute), on SQLite.
func BenchmarkAuthenticatedRead(b *testing.B) {
	_, h, m := newBenchAPI(b, func(blob.Store, *store.Store) blob.Store { return nil })
	serve := func(key, method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	created := serve(apiToken, "POST", "/v1/keys", `{"name":"bench","role":"agent"}`)
	if created.Code != http.StatusCreated {
		b.Fatal(created.Body.String())
	}
	key := strings.Split(strings.Split(created.Body.String(), `"key": "`)[1], `"`)[0]
	for _, c := range []struct{ name, key string }{{"bootstrap", apiToken}, {"stored-key", key}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if w := serve(c.key, "GET", "/v1/meetings/"+m.ID, ""); w.Code != http.StatusOK {
					b.Fatal(w.Body.String())
				}
			}
		})
	}
}

// newBenchAPI is an API on SQLite and a disk blob store, which wrap may
// replace (returning nil keeps the disk), with one meeting.
func newBenchAPI(b *testing.B, wrap func(disk blob.Store, st *store.Store) blob.Store) (*store.Store, http.Handler, store.Meeting) {
	b.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{SQLitePath: filepath.Join(b.TempDir(), "g.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	var blobs blob.Store
	if blobs, err = blob.NewDisk(b.TempDir()); err != nil {
		b.Fatal(err)
	}
	if w := wrap(blobs, st); w != nil {
		blobs = w
	}
	signer, err := token.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		b.Fatal(err)
	}
	media := &fakeMedia{store: st}
	a, err := api.New(api.Config{Token: apiToken}, api.Deps{Store: st, Blobs: blobs, Ender: media, Rerunner: media,
		Sessions: media, Signer: signer, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	m, err := st.CreateMeeting(ctx, "Bench", "")
	if err != nil {
		b.Fatal(err)
	}
	return st, a.Handler(), m
}
