package transcribe_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/kyutaitest"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// kyutaiBundle is a double and a client configured for it, with paddings
// short enough for fast tests but the protocol unchanged.
type kyutaiBundle struct {
	srv *kyutaitest.Server
	cfg transcribe.KyutaiConfig
}

func setupKyutai(t *testing.T, opts kyutaiest) *kyutaiBundle {
	t.Helper()
	srv := kyutaitest.NewServer(kyutaitest.Options(opts))
	t.Cleanup(srv.Close)
	return &kyutaiBundle{srv: srv, cfg: transcribe.KyutaiConfig{
		URL:            srv.URL(),
		APIKey:         opts.APIKey,
		EndPadding:     time.Second,
		MaxTailPadding: 2 * time.Second,
		BusyRetry:      10 * time.Millisecond,
		BusyRetryMax:   40 * time.Millisecond,
		IdleTimeout:    2 * time.Second,
	}}
}

// kyutaiest is kyutaitest.Options, named short for table tests.
type kyutaiest = kyutaitest.Options

func (b *kyutaiBundle) client(t *testing.T) *transcribe.Kyutai {
	t.Helper()
	k, err := transcribe.NewKyutai(b.cfg)
	require.NoError(t, err)
	return k
}

// toneWAV renders words as 16 kHz tone speech followed by trailing silence.
func toneWAV(t *testing.T, words []transcribetest.TimedWord, trailing time.Duration) []byte {
	t.Helper()
	pcm, err := transcribetest.Synthesize(words, 16000)
	require.NoError(t, err)
	pcm = append(pcm, make([]int16, int(trailing.Seconds()*16000))...)
	return transcribetest.EncodeWAV(pcm, 16000)
}

// requireWordsNear checks texts exactly and times within tol.
func requireWordsNear(t *testing.T, want []transcribetest.TimedWord, got []transcribe.Word, tol time.Duration) {
	t.Helper()
	require.Len(t, got, len(want), "got %v", got)
	for i := range want {
		require.Equal(t, want[i].Text, got[i].Text, "word %d", i)
		require.InDelta(t, want[i].Start.Seconds(), got[i].Start.Seconds(), tol.Seconds(), "word %d %q start", i, want[i].Text)
		require.InDelta(t, want[i].End.Seconds(), got[i].End.Seconds(), tol.Seconds(), "word %d %q end", i, want[i].Text)
	}
}

func TestKyutaiTranscribeWordsAndTimes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		opts  kyutaiest
		delay time.Duration // client's ModelDelay; 0 = default
		lead  time.Duration
	}{
		{name: "stt-1b delay", opts: kyutaiest{}},
		{name: "stt-2.6b delay", opts: kyutaiest{ModelDelay: 2500 * time.Millisecond}, delay: 2500 * time.Millisecond},
		{name: "leading silence subtracted", opts: kyutaiest{}, lead: 700 * time.Millisecond},
		{name: "no EndWord", opts: kyutaiest{NoEndWord: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupKyutai(t, tc.opts)
			b.cfg.ModelDelay, b.cfg.LeadingSilence = tc.delay, tc.lead
			if tc.delay > 0 {
				b.cfg.EndPadding = tc.delay + time.Second
			}
			words := append(transcribetest.Layout(200*time.Millisecond, "alpha", "bravo", "charlie"),
				transcribetest.Layout(2*time.Second, "delta", "echo", "zulu")...)
			res, err := b.client(t).Transcribe(t.Context(), transcribe.Request{Audio: toneWAV(t, words, 300*time.Millisecond), Language: "en"})
			require.NoError(t, err)
			if tc.opts.NoEndWord {
				// A word without EndWord ends where the next starts, the last
				// at the end of the audio: check starts and order only.
				require.Len(t, res.Words, len(words))
				for i, w := range words {
					require.Equal(t, w.Text, res.Words[i].Text)
					require.InDelta(t, w.Start.Seconds(), res.Words[i].Start.Seconds(), 0.1)
				}
				require.InDelta(t, words[1].Start.Seconds(), res.Words[0].End.Seconds(), 0.1)
				require.Equal(t, res.Duration, res.Words[len(words)-1].End)
				return
			}
			requireWordsNear(t, words, res.Words, 100*time.Millisecond)
			require.Equal(t, "alpha bravo charlie delta echo zulu", res.Text)
			require.Equal(t, "en", res.Language)
			require.Equal(t, words[len(words)-1].End+300*time.Millisecond, res.Duration)
			require.Eventually(t, func() bool { return b.srv.InUse() == 0 }, 5*time.Second, 5*time.Millisecond)
			sessions := b.srv.Sessions()
			require.Len(t, sessions, 1)
			require.True(t, sessions[0].Clean, "client closes normally: %+v", sessions[0])
			require.Equal(t, []int64{1}, sessions[0].Markers)
		})
	}
}

func TestKyutaiConfigValidation(t *testing.T) {
	t.Parallel()
	for _, cfg := range []transcribe.KyutaiConfig{
		{},
		{URL: "http://127.0.0.1:1/api/asr-streaming"},
		{URL: "ws://127.0.0.1:1/x", MaxBuffered: 100},
		{URL: "ws://127.0.0.1:1/x", EndPadding: 100 * time.Millisecond},
		{URL: "ws://127.0.0.1:1/x", ChunkDuration: time.Millisecond},
	} {
		_, err := transcribe.NewKyutai(cfg)
		require.Error(t, err, "%+v", cfg)
	}
	_, err := transcribe.NewKyutai(transcribe.KyutaiConfig{URL: "wss://stt.example/api/asr-streaming"})
	require.NoError(t, err)
}

// liveWords writes pcm to a live stream at real pace, 20 ms at a time, as
// a participant's decoded audio arrives, and records when each callback
// came.
type heard struct {
	w     transcribe.Word
	final bool
	at    time.Time
}

func writeLive(t *testing.T, st *transcribe.KyutaiStream, pcm []int16) {
	t.Helper()
	const frame = 320 // 20 ms at 16 kHz
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for from := 0; from < len(pcm); from += frame {
		require.NoError(t, st.Write(pcm[from:min(from+frame, len(pcm))]))
		<-tick.C // the source's own pace, not a wait for the code under test
	}
}

func TestKyutaiStreamDeliversEachWordWithinASecond(t *testing.T) {
	t.Parallel()
	b := setupKyutai(t, kyutaiest{PingInterval: 100 * time.Millisecond})
	words := transcribetest.Layout(300*time.Millisecond, "mike", "november", "oscar", "papa")
	pcm, err := transcribetest.Synthesize(words, 16000)
	require.NoError(t, err)

	var (
		mu  sync.Mutex
		got []heard
	)
	st, err := b.client(t).Stream(t.Context(), func(w transcribe.Word, final bool) {
		mu.Lock()
		got = append(got, heard{w: w, final: final, at: time.Now()})
		mu.Unlock()
	})
	require.NoError(t, err)
	writeLive(t, st, pcm)
	require.NoError(t, st.Close(t.Context()))
	require.NoError(t, st.Close(t.Context()), "Close is idempotent")
	require.Error(t, st.Write(pcm[:10]), "no writes after Close")
	require.Positive(t, b.srv.Pings(), "the client answers the server's pings while streaming")

	mu.Lock()
	defer mu.Unlock()
	emitted := b.srv.Emitted()
	require.Len(t, emitted, 2*len(words))
	require.Len(t, got, 2*len(words), "each word once partial, once final")
	var finals []transcribe.Word
	var worst time.Duration
	for i, e := range emitted {
		h := got[i]
		require.Equal(t, e.Text, h.w.Text)
		require.Equal(t, e.Final, h.final)
		latency := h.at.Sub(e.At)
		worst = max(worst, latency)
		require.Less(t, latency, time.Second, "word %q final=%v reached the callback %v after the double sent it", e.Text, e.Final, latency)
		if h.final {
			finals = append(finals, h.w)
		} else {
			require.Equal(t, h.w.Start, h.w.End, "a partial word has no end yet")
		}
	}
	t.Logf("worst emit-to-callback latency: %v", worst)
	requireWordsNear(t, words, finals, 100*time.Millisecond)
}

func TestKyutaiBackPressure(t *testing.T) {
	t.Parallel()
	// The double works at 3x real time, the client could send far faster:
	// only back-pressure keeps the server's queue short.
	b := setupKyutai(t, kyutaiest{Speed: 3})
	b.cfg.MaxBuffered = 8 * kyutaitest.FrameSize
	words := transcribetest.Layout(100*time.Millisecond, "golf", "hotel", "india", "juliett", "kilo")
	res, err := b.client(t).Transcribe(t.Context(), transcribe.Request{Audio: toneWAV(t, words, 0)})
	require.NoError(t, err)
	requireWordsNear(t, words, res.Words, 100*time.Millisecond)
	maxBuf := b.srv.MaxBuffered()
	t.Logf("server's largest queue: %d samples (client limit %d)", maxBuf, b.cfg.MaxBuffered)
	// One chunk may be in flight when a Step is computed.
	require.LessOrEqual(t, maxBuf, b.cfg.MaxBuffered+2*kyutaitest.FrameSize)
	require.Greater(t, maxBuf, b.cfg.MaxBuffered/2, "the client kept the server busy")
}

func TestKyutaiBusyRetry(t *testing.T) {
	t.Parallel()
	t.Run("first connections turned away", func(t *testing.T) {
		t.Parallel()
		b := setupKyutai(t, kyutaiest{BusyFirst: 3})
		words := transcribetest.Layout(0, "lima", "mike")
		res, err := b.client(t).Transcribe(t.Context(), transcribe.Request{Audio: toneWAV(t, words, 200*time.Millisecond)})
		require.NoError(t, err)
		requireWordsNear(t, words, res.Words, 100*time.Millisecond)
		require.Equal(t, 3, b.srv.Busy())
		require.Equal(t, 4, b.srv.Handshakes())
	})
	t.Run("waits for a channel to come free", func(t *testing.T) {
		t.Parallel()
		b := setupKyutai(t, kyutaiest{Channels: 1})
		k := b.client(t)
		st, err := k.Stream(t.Context(), nil)
		require.NoError(t, err)

		// While the stream holds the only channel, a call with a short
		// deadline gives up with ErrKyutaiBusy.
		short, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		words := transcribetest.Layout(0, "romeo")
		_, err = k.Transcribe(short, transcribe.Request{Audio: toneWAV(t, words, 200*time.Millisecond)})
		require.ErrorIs(t, err, transcribe.ErrKyutaiBusy)
		require.ErrorIs(t, err, context.DeadlineExceeded)

		done := make(chan error, 1)
		var res transcribe.Result
		go func() {
			var err error
			res, err = k.Transcribe(t.Context(), transcribe.Request{Audio: toneWAV(t, words, 200*time.Millisecond)})
			done <- err
		}()
		require.Eventually(t, func() bool { return b.srv.Busy() >= 3 }, 5*time.Second, 5*time.Millisecond)
		require.NoError(t, st.Close(t.Context()))
		require.NoError(t, <-done)
		requireWordsNear(t, words, res.Words, 100*time.Millisecond)
	})
}

func TestKyutaiLateMarker(t *testing.T) {
	t.Parallel()
	words := transcribetest.Layout(0, "sierra", "tango")
	t.Run("within the tail padding", func(t *testing.T) {
		t.Parallel()
		b := setupKyutai(t, kyutaiest{MarkerLate: 1500 * time.Millisecond})
		res, err := b.client(t).Transcribe(t.Context(), transcribe.Request{Audio: toneWAV(t, words, 0)})
		require.NoError(t, err)
		requireWordsNear(t, words, res.Words, 100*time.Millisecond)
		require.Equal(t, []int64{1}, b.srv.Sessions()[0].Markers)
	})
	t.Run("never within the tail padding", func(t *testing.T) {
		t.Parallel()
		b := setupKyutai(t, kyutaiest{MarkerLate: 10 * time.Second})
		b.cfg.IdleTimeout = 300 * time.Millisecond
		_, err := b.client(t).Transcribe(t.Context(), transcribe.Request{Audio: toneWAV(t, words, 0)})
		require.ErrorIs(t, err, transcribe.ErrBadAnswer)
		require.ErrorContains(t, err, "Marker did not come back")
		// The client sent its audio, the end padding and at most
		// MaxTailPadding more, at 24 kHz.
		sent := b.srv.Sessions()[0].Received
		audio := int64((words[1].End + b.cfg.EndPadding + b.cfg.MaxTailPadding).Seconds() * kyutaitest.SampleRate)
		require.InDelta(t, audio, sent, 2*kyutaitest.FrameSize)
	})
}

func TestKyutaiUnauthorised(t *testing.T) {
	t.Parallel()
	b := setupKyutai(t, kyutaiest{APIKey: "s3cret"})
	words := transcribetest.Layout(0, "victor")
	audio := toneWAV(t, words, 200*time.Millisecond)

	b.cfg.APIKey = "wrong"
	_, err := b.client(t).Transcribe(t.Context(), transcribe.Request{Audio: audio})
	he, ok := errors.AsType[*transcribe.HTTPError](err)
	require.True(t, ok, "got %v", err)
	require.Equal(t, http.StatusUnauthorized, he.StatusCode)
	require.False(t, he.Temporary(), "a bad key stays bad")
	_, err = b.client(t).Stream(t.Context(), nil)
	require.ErrorAs(t, err, &he)

	b.cfg.APIKey = "s3cret"
	res, err := b.client(t).Transcribe(t.Context(), transcribe.Request{Audio: audio})
	require.NoError(t, err)
	requireWordsNear(t, words, res.Words, 100*time.Millisecond)
}

func TestKyutaiServerErrorMidStream(t *testing.T) {
	t.Parallel()
	b := setupKyutai(t, kyutaiest{FailAfter: time.Second})
	words := transcribetest.Layout(0, "alpha", "bravo", "charlie", "delta", "echo")
	_, err := b.client(t).Transcribe(t.Context(), transcribe.Request{Audio: toneWAV(t, words, 0)})
	ke, ok := errors.AsType[*transcribe.KyutaiError](err)
	require.True(t, ok, "got %v", err)
	require.Contains(t, ke.Message, "model failure")
	he, ok := errors.AsType[*transcribe.HTTPError](err)
	require.True(t, ok)
	require.True(t, he.Temporary(), "a stream the server broke may work next time")

	// Live: Write or Close reports it.
	st, err := b.client(t).Stream(t.Context(), nil)
	require.NoError(t, err)
	pcm, err := transcribetest.Synthesize(words, 16000)
	require.NoError(t, err)
	err = st.Write(pcm)
	if err == nil {
		err = st.Close(t.Context())
	}
	require.ErrorAs(t, err, &ke)
}

func TestKyutaiCancellation(t *testing.T) {
	t.Parallel()
	b := setupKyutai(t, kyutaiest{Speed: 1}) // real time: the call would take seconds
	words := transcribetest.Layout(0, "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := b.client(t).Transcribe(ctx, transcribe.Request{Audio: toneWAV(t, words, 0)})
		done <- err
	}()
	require.Eventually(t, func() bool { return len(b.srv.Emitted()) > 0 }, 5*time.Second, 5*time.Millisecond)
	cancelled := time.Now()
	cancel()
	err := <-done
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(cancelled), 500*time.Millisecond, "cancellation is prompt")
	require.Eventually(t, func() bool { return b.srv.InUse() == 0 }, 5*time.Second, 5*time.Millisecond, "the channel is given back")

	// A live stream's context ends it too.
	sctx, scancel := context.WithCancel(t.Context())
	st, err := b.client(t).Stream(sctx, nil)
	require.NoError(t, err)
	scancel()
	require.ErrorIs(t, st.Close(t.Context()), context.Canceled)
}

func TestKyutaiRejectsBadRequests(t *testing.T) {
	t.Parallel()
	b := setupKyutai(t, kyutaiest{})
	k := b.client(t)
	for _, audio := range [][]byte{nil, []byte("OggS"), transcribetest.EncodeWAV(make([]int16, 100), 8000), transcribetest.EncodeWAV(nil, 16000)} {
		_, err := k.Transcribe(t.Context(), transcribe.Request{Audio: audio})
		require.ErrorIs(t, err, transcribe.ErrInvalidRequest)
	}
	require.Zero(t, b.srv.Handshakes(), "nothing is sent for a request that cannot be")
}
