package blob

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"
)

// Reading through the verifier must cost no allocation per Read: objects
// are read in many small reads, and the hash is fed in place.
// Not parallel: AllocsPerRun refuses to run beside other tests.
func TestVerifyingReaderAllocatesNothingPerRead(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 1<<20)
	v := newVerifyingReader(io.NopCloser(bytes.NewReader(data)), "k", "00")
	buf := make([]byte, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := v.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Read, want 0", allocs)
	}
}

func BenchmarkVerifyingReader(b *testing.B) {
	data := bytes.Repeat([]byte("greffier"), 128<<10) // 1 MiB
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	buf := make([]byte, 32<<10)
	r := bytes.NewReader(data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(data)
		v := newVerifyingReader(io.NopCloser(r), "k", want)
		for {
			_, err := v.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
