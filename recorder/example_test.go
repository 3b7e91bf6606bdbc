package recorder

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/pion/rtp"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/store"
)

// Example records one second of a speaker, with 400 ms of DTX silence in
// the middle, and stores it. In Greffier, cmd/greffier opens a Writer when
// the SFU announces a track, hands it every packet from the SFU's Tap, and
// closes it when the track ends; at start-up it calls Recover first.
func Example() {
	dir, _ := os.MkdirTemp("", "recorder-example")
	defer os.RemoveAll(dir)
	blobs, _ := blob.NewDisk(dir + "/blobs")
	catalog := &fakeCatalog{spoolDir: dir + "/spool", rows: map[string]store.Track{}}
	rec, err := New(Config{SpoolDir: dir + "/spool"}, blobs, catalog, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rec.Close() // stops retrying what a full disk or database left unfinished
	ctx := context.Background()
	if err := rec.Recover(ctx); err != nil { // finish what a crash left behind
		fmt.Println(err)
	}

	zero := time.Now()
	w, err := rec.Open(ctx, Track{MeetingID: "mtg_1", Identity: "alice", SSRC: 7, PayloadType: 111,
		ClockZero: zero, FirstPacketAt: zero.Add(2 * time.Second)})
	if err != nil {
		fmt.Println(err)
		return
	}
	frame := []byte{31 << 3, 0xAA, 0xBB} // a 20 ms Opus (CELT) packet
	ts := uint32(0)
	for seq := uint16(0); seq < 30; seq++ {
		if seq == 15 {
			ts += 20 * 960 // the sender was silent for 400 ms
		}
		w.WriteRTP(&rtp.Packet{Header: rtp.Header{PayloadType: 111, SequenceNumber: seq, Timestamp: ts}, Payload: frame})
		ts += 960
	}
	if err := w.Close(ctx); err != nil {
		fmt.Println(err)
		return
	}
	row := catalog.row(w.ID())
	fmt.Println(row.State, row.StartMS, row.DurationMS, row.BlobKey == "meetings/mtg_1/tracks/"+w.ID()+".webm")
	// Output: stored 2000 1000 true
}
