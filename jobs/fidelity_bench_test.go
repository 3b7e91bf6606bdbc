package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/transcribe"
)

// BenchmarkFidelity measures how close the minutes come to what the
// recogniser makes of each speaker's whole recording, on the read meeting
// (readMeeting): an open recogniser from Debian (pocketsphinx with its US
// English model) behind a small OpenAI-compatible server, reached through
// the production client. It reports word error rates against the text
// read, for the whole recordings and for the segments as the pipeline
// cuts them (without merging, merged; without and with the previous
// words as prompt), each speaker's voiced-frame coverage, and the minutes'
// latency after the meeting's end, live (segments sent as they close)
// with and without the speaker order prompts need. Run it alone:
//
//	apt-get install pocketsphinx pocketsphinx-en-us espeak-ng ffmpeg
//	go test ./jobs -run '^$' -bench Fidelity -benchtime 1x -timeout 60m
//
// pocketsphinx reads no prompt, so what the prompt brings needs a
// recogniser that reads one: GREFFIER_FIDELITY_URL (an OpenAI-compatible
// base URL, e.g. speaches' http://127.0.0.1:8000/v1) and
// GREFFIER_FIDELITY_MODEL point the same benchmark at it instead.
func BenchmarkFidelity(b *testing.B) {
	base, model := os.Getenv("GREFFIER_FIDELITY_URL"), os.Getenv("GREFFIER_FIDELITY_MODEL")
	bins := []string{"ffmpeg", "espeak-ng"}
	if base == "" {
		bins = append(bins, "pocketsphinx_continuous")
	}
	for _, bin := range bins {
		if _, err := exec.LookPath(bin); err != nil {
			b.Skipf("%s is not installed: apt-get install pocketsphinx pocketsphinx-en-us espeak-ng ffmpeg", bin)
		}
	}
	prompts := func() []string { return nil }
	if base == "" {
		srv := newSphinxServer(b)
		base, prompts = srv.URL+"/v1", srv.prompts
	}
	tr, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: base, Model: model, Timeout: 10 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for range b.N {
		var tracks []readTrack
		var packets [][]audio.TimedPacket
		for _, sp := range readMeeting {
			t := speakLines(b, sp, len(sp.lines))
			tracks = append(tracks, t)
			packets = append(packets, opusPackets(b, t.pcm))
		}
		report := func(name string, hyp []string) {
			var errs, words int
			for i, t := range tracks {
				e, n := wordErrors(refText(t), hyp[i])
				errs, words = errs+e, words+n
			}
			b.ReportMetric(100*float64(errs)/float64(words), "WER%_"+unit(name))
			logf(b, "%-28s WER %5.1f%% (%d errors / %d words)", name, 100*float64(errs)/float64(words), errs, words)
		}

		// The recogniser on each speaker's whole recording: every packet
		// recorded, as Ogg Opus, as the segments are sent.
		var whole []string
		for i := range tracks {
			var ogg bytes.Buffer
			if err := audio.WriteOggOpus(&ogg, 1, packets[i][0].MS, packets[i]); err != nil {
				b.Fatal(err)
			}
			res, err := tr.Transcribe(ctx, transcribe.Request{Audio: ogg.Bytes(), Language: "en"})
			if err != nil {
				b.Fatal(err)
			}
			whole = append(whole, res.Text)
		}
		report("whole recordings", whole)

		for _, c := range []struct {
			name    string
			cfg     Config
			context bool
		}{
			{"segments, no merging", Config{MergeSegment: -1}, false},
			{"segments, merged", Config{}, false},
			{"segments, merged, context", Config{}, true},
		} {
			vad := c.cfg.VoiceActivity()
			hyp := make([]string, len(tracks))
			errs := make([]error, len(tracks))
			segments := 0
			var wg sync.WaitGroup
			for i, t := range tracks {
				cuts := cutWith(b, vad, packets[i], senderLevels(b, packets[i]))
				cov, _ := coverage(t.clean, cuts)
				logf(b, "%-28s %s: %d segments, coverage %.2f%%", c.name, t.identity, len(cuts), 100*cov)
				segments += len(cuts)
				wg.Add(1)
				go func() { // speakers in parallel, each in order
					defer wg.Done()
					var texts []string
					texts, _, errs[i] = transcribeInOrder(ctx, tr, t.identity, cuts, c.context)
					hyp[i] = strings.Join(texts, " ")
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			report(c.name, hyp)
			b.ReportMetric(float64(segments), "segments_"+unit(c.name))
		}
		if ps := prompts(); len(ps) > 0 {
			logf(b, "prompts the recogniser received (pocketsphinx reads none): %d, e.g. %q", len(ps), lastPrompt(ps))
		}

		// Live: the meeting plays in real time into the cutters; each
		// segment is sent as it closes, either at once (4 at a time, no
		// order) or after its speaker's previous one (prompts need it).
		for _, ordered := range []bool{false, true} {
			after := liveLatency(b, tr, packets, ordered)
			name := map[bool]string{false: "unordered", true: "speaker order"}[ordered]
			logf(b, "live, %-13s: minutes' transcripts done %v after the meeting's end", name, after.Round(10*time.Millisecond))
			b.ReportMetric(after.Seconds(), "s_after_end_"+unit(name))
		}
	}
}

// logf logs at once (a benchmark's own log shows only at its end) and in
// the benchmark's log.
func logf(b *testing.B, format string, args ...any) {
	fmt.Printf(format+"\n", args...)
	b.Logf(format, args...)
}

// unit makes a metric's unit of a name: no spaces nor commas.
func unit(name string) string {
	return strings.NewReplacer(" ", "_", ",", "").Replace(name)
}

func lastPrompt(ps []string) string {
	if len(ps) == 0 {
		return ""
	}
	return ps[len(ps)-1]
}

// refText is the text a track reads.
func refText(t readTrack) string {
	parts := make([]string, len(t.lines))
	for i, l := range t.lines {
		parts[i] = l.text
	}
	return strings.Join(parts, " ")
}

// normWords lowercases text and splits it into words without punctuation.
func normWords(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	})
}

// wordErrors is the edit distance between ref and hyp in words, and the
// number of words of ref.
func wordErrors(ref, hyp string) (int, int) {
	r, h := normWords(ref), normWords(hyp)
	prev := make([]int, len(h)+1)
	cur := make([]int, len(h)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(r); i++ {
		cur[0] = i
		for j := 1; j <= len(h); j++ {
			sub := prev[j-1]
			if r[i-1] != h[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(h)], len(r)
}

// transcribeInOrder sends one speaker's segments one after the other, each
// prompted (with context) as the pipeline prompts it: the meeting's
// vocabulary and the end of the speaker's earlier transcripts, through the
// pipeline's own speakerOrder.
func transcribeInOrder(ctx context.Context, tr *transcribe.OpenAI, identity string, cuts []cut, context bool) ([]string, []string, error) {
	o := speakerOrder{tracks: map[string]store.Track{"t": {ID: "t", Identity: identity, SpeechDetected: true}}}
	for _, c := range cuts {
		o.segs = append(o.segs, store.SpeechSegment{TrackID: "t", Identity: identity, StartMS: c.speech.StartMS,
			EndMS: c.speech.EndMS, Status: store.SegmentPending})
	}
	m := store.Meeting{Title: "Council meeting"}
	parts := []store.Participant{{DisplayName: "Alice"}, {DisplayName: "Bob"}}
	var texts, prompts []string
	for i, c := range cuts {
		req := transcribe.Request{Audio: c.ogg, Language: "en"}
		if context {
			req.Vocabulary = vocabulary(m, parts, o.segs[i])
			req.Prompt = o.previousWords(i)
		}
		res, err := tr.Transcribe(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		o.segs[i].Status, o.segs[i].Text = store.SegmentTranscribed, res.Text
		texts, prompts = append(texts, res.Text), append(prompts, transcribe.Prompt(req))
	}
	return texts, prompts, nil
}

// liveLatency plays the tracks' packets in real time into cutters (merged
// segments, sender levels), sends each segment as it closes, and returns
// how long after the last packet every transcript was back. ordered sends
// a speaker's segment only once their previous one is back; otherwise up
// to 4 go at once in the order they closed.
func liveLatency(b *testing.B, tr *transcribe.OpenAI, packets [][]audio.TimedPacket, ordered bool) time.Duration {
	b.Helper()
	ctx := context.Background()
	vad := Config{}.VoiceActivity()
	slots := make(chan struct{}, 4)
	var wg sync.WaitGroup
	chains := make([]chan struct{}, len(packets)) // closed when a speaker's latest segment is back
	for i := range chains {
		chains[i] = make(chan struct{})
		close(chains[i])
	}
	send := func(speaker int, c cut) {
		prev := chains[speaker]
		done := make(chan struct{})
		if ordered {
			chains[speaker] = done
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			if ordered {
				<-prev
			}
			slots <- struct{}{}
			defer func() { <-slots }()
			if _, err := tr.Transcribe(ctx, transcribe.Request{Audio: c.ogg, Language: "en"}); err != nil {
				b.Error(err)
			}
		}()
	}
	cutters := make([]*cutter, len(packets))
	next := make([]int, len(packets))
	levels := make([][]int, len(packets))
	for i := range packets {
		cutters[i] = newCutter(vad, 1)
		levels[i] = senderLevels(b, packets[i])
	}
	start := time.Now()
	for {
		now := time.Since(start).Milliseconds()
		left := false
		for i, ps := range packets {
			for ; next[i] < len(ps) && ps[next[i]].MS <= now; next[i]++ {
				cuts, err := cutters[i].packet(ps[next[i]].MS, ps[next[i]].Data, levels[i][next[i]])
				if err != nil {
					b.Fatal(err)
				}
				for _, c := range cuts {
					send(i, c)
				}
			}
			left = left || next[i] < len(ps)
		}
		if !left {
			break
		}
		time.Sleep(20 * time.Millisecond) // the packets' own pace
	}
	end := time.Now()
	for i := range cutters {
		cuts, err := cutters[i].flush()
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range cuts {
			send(i, c)
		}
	}
	wg.Wait()
	return time.Since(end)
}

// sphinxServer is an OpenAI-compatible transcription server around
// pocketsphinx_continuous, for benchmarks: each request's audio is decoded
// to 16 kHz WAV by ffmpeg and recognised by a fresh pocketsphinx process
// (its model loads each time: a fixed cost per request of a second or
// two). pocketsphinx takes no prompt; the server records the prompts it
// is sent.
type sphinxServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newSphinxServer(tb testing.TB) *sphinxServer {
	s := &sphinxServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.transcribe))
	tb.Cleanup(s.Close)
	return s
}

func (s *sphinxServer) prompts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func (s *sphinxServer) transcribe(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, err error) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"message": err.Error()}})
	}
	f, _, err := r.FormFile("file")
	if err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	data, err := io.ReadAll(f)
	if err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	if p := r.FormValue("prompt"); p != "" {
		s.mu.Lock()
		s.seen = append(s.seen, p)
		s.mu.Unlock()
	}
	dir, err := os.MkdirTemp("", "sphinx")
	if err != nil {
		fail(http.StatusInternalServerError, err)
		return
	}
	defer os.RemoveAll(dir)
	in, wav := filepath.Join(dir, "in"), filepath.Join(dir, "in.wav")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		fail(http.StatusInternalServerError, err)
		return
	}
	if out, err := exec.CommandContext(r.Context(), "ffmpeg", "-v", "error", "-i", in, "-ar", "16000", "-ac", "1", wav).CombinedOutput(); err != nil {
		fail(http.StatusUnsupportedMediaType, fmt.Errorf("%w: %s", err, out))
		return
	}
	raw, err := os.ReadFile(wav)
	if err != nil {
		fail(http.StatusInternalServerError, err)
		return
	}
	pcm, rate, err := audio.ReadWAV(bytes.NewReader(raw))
	if err != nil {
		fail(http.StatusUnsupportedMediaType, err)
		return
	}
	out, err := exec.CommandContext(r.Context(), "pocketsphinx_continuous", "-infile", wav, "-logfn", os.DevNull).Output()
	if err != nil {
		fail(http.StatusInternalServerError, err)
		return
	}
	text := strings.Join(strings.Fields(string(out)), " ")
	duration := float64(len(pcm)) / float64(rate)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"task": "transcribe", "language": "english", "duration": duration, "text": text,
		"segments": []map[string]any{{"id": 0, "start": 0, "end": duration, "text": text}}})
}
