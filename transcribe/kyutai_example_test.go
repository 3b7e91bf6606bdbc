package transcribe_test

import (
	"context"
	"fmt"
	"time"

	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/kyutaitest"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// A live session: audio is written as it arrives, words come back as the
// server recognises them (partial first, then final with their end), and
// Close flushes the last ones.
func ExampleKyutai_Stream() {
	srv := kyutaitest.NewServer(kyutaitest.Options{})
	defer srv.Close()
	k, err := transcribe.NewKyutai(transcribe.KyutaiConfig{URL: srv.URL(), EndPadding: time.Second, MaxTailPadding: 2 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	var finals []string
	st, err := k.Stream(ctx, func(w transcribe.Word, final bool) {
		if final { // runs on the stream's reader goroutine
			finals = append(finals, fmt.Sprintf("%s@%.1fs", w.Text, w.Start.Seconds()))
		}
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	pcm, _ := transcribetest.Synthesize(transcribetest.Layout(400*time.Millisecond, "hotel", "india"), 16000)
	for from := 0; from < len(pcm); from += 320 { // 20 ms at a time, as a call delivers it
		if err := st.Write(pcm[from:min(from+320, len(pcm))]); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := st.Close(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(finals)
	// Output: [hotel@0.4s india@0.8s]
}
