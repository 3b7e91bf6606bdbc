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

var (
	_ = errors.Is
	_ = http.StatusOK
	_ sync.Mutex
	_ context.Context
)
