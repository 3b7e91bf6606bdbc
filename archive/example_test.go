package archive_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/greffier/greffier/archive"
)

// A meeting's archive from its recorded segments: each Track says whose
// voice it is, where it sits on the meeting clock and how to read it (here
// from files; in Greffier from blob storage). A rejoin would be another
// Track with the same Identity.
func Example() {
	dir, err := os.MkdirTemp("", "archive-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	alice, bob := fixtureWebM(dir, "alice"), fixtureWebM(dir, "bob")

	fromFile := func(path string) func(context.Context) (io.ReadCloser, error) {
		return func(context.Context) (io.ReadCloser, error) { return os.Open(path) }
	}
	tracks := []archive.Track{
		{Identity: "u-alice", Name: "Alice", StartMS: 1000, Open: fromFile(alice)},
		{Identity: "u-bob", Name: "Bob", StartMS: 500, Open: fromFile(bob)},
	}

	// WriteMultitrack needs a seekable writer: a local file, uploaded once
	// complete. Mixdown takes any writer.
	webm, err := os.Create(filepath.Join(dir, "archive.webm"))
	if err != nil {
		log.Fatal(err)
	}
	defer webm.Close()
	st, err := archive.WriteMultitrack(context.Background(), webm, tracks)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("archive.webm: %d tracks, %d packets copied, %v\n", st.Speakers, st.Packets, st.Duration)

	flac, err := os.Create(filepath.Join(dir, "mix.flac"))
	if err != nil {
		log.Fatal(err)
	}
	defer flac.Close()
	st, err = archive.Mixdown(context.Background(), flac, tracks)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("mix.flac: %d voices, %v\n", st.Speakers, st.Duration)
	// Output:
	// archive.webm: 2 tracks, 902 packets copied, 10.008s
	// mix.flac: 2 voices, 10s
}

// fixtureWebM remuxes a committed Ogg Opus fixture to WebM, packets
// untouched, as a stand-in for a recorder track.
func fixtureWebM(dir, name string) string {
	out := filepath.Join(dir, name+".webm")
	in := filepath.Join("..", "testdata", "meeting", name+".opus")
	if msg, err := exec.Command("ffmpeg", "-v", "error", "-i", in, "-c", "copy", out).CombinedOutput(); err != nil {
		log.Fatalf("ffmpeg: %v: %s", err, msg)
	}
	return out
}
