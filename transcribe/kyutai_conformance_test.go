package transcribe_test

import (
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/transcribe"
)

// TestConformanceKyutaiDoubles runs the conformance suite against the
// Kyutai double, well-behaved and awkward, through Guard as the pipeline
// uses it, with speech as WAV, and well-behaved as Ogg Opus too.
func TestConformanceKyutaiDoubles(t *testing.T) {
	t.Parallel()
	doubles := newConformanceDoubles(t)
	for name, tc := range map[string]struct {
		opts  kyutaiest
		delay time.Duration // the model's delay, client and server; 0 = stt-1b's
		ogg   bool          // run with Ogg Opus too
	}{
		"stt-1b": {ogg: true},
		// Two channels for three concurrent calls: one waits through "no free channels".
		"stt-2.6b, two busy channels": {opts: kyutaiest{Channels: 2, BusyFirst: 2}, delay: 2500 * time.Millisecond},
		"no EndWord, late Marker":     {opts: kyutaiest{NoEndWord: true, MarkerLate: time.Second}},
	} {
		doubles.each(t, name, tc.ogg, func(t *testing.T, speech conformanceSpeech) {
			if tc.delay > 0 {
				tc.opts.ModelDelay = tc.delay
			}
			b := setupKyutai(t, tc.opts)
			if tc.delay > 0 {
				b.cfg.ModelDelay, b.cfg.EndPadding = tc.delay, tc.delay+time.Second
			}
			runConformance(t, asPipeline(b.client(t)), speech)
			if tc.opts.BusyFirst > 0 {
				require.GreaterOrEqual(t, b.srv.Busy(), tc.opts.BusyFirst, "busy channels were waited out")
			}
		})
	}
}

// TestConformanceKyutaiServer runs the suite against a real Kyutai
// streaming server (moshi-server's asr-streaming) named by the
// environment.
func TestConformanceKyutaiServer(t *testing.T) {
	t.Parallel()
	url := os.Getenv("GREFFIER_CONFORMANCE_KYUTAI_URL")
	if url == "" {
		t.Skip("no real Kyutai server to check: set GREFFIER_CONFORMANCE_KYUTAI_URL (e.g. ws://127.0.0.1:8080/api/asr-streaming), " +
			"and optionally GREFFIER_CONFORMANCE_KYUTAI_KEY (sent as kyutai-api-key) and GREFFIER_CONFORMANCE_KYUTAI_DELAY " +
			"(the model's delay, default 500ms for stt-1b; 2.5s for stt-2.6b), to run the conformance suite against it")
	}
	cfg := transcribe.KyutaiConfig{URL: url, APIKey: os.Getenv("GREFFIER_CONFORMANCE_KYUTAI_KEY")}
	if s := os.Getenv("GREFFIER_CONFORMANCE_KYUTAI_DELAY"); s != "" {
		delay, err := time.ParseDuration(s)
		require.NoError(t, err, "GREFFIER_CONFORMANCE_KYUTAI_DELAY must be a Go duration such as 2.5s")
		cfg.ModelDelay = delay
		if delay+time.Second > transcribe.DefaultKyutaiEndPadding {
			cfg.EndPadding = delay + time.Second
		}
	}
	tr, err := transcribe.NewKyutai(cfg)
	require.NoError(t, err)
	speech := runConformanceServer(t, tr, url)

	t.Run("wrong key", func(t *testing.T) {
		if cfg.APIKey == "" {
			t.Skip("GREFFIER_CONFORMANCE_KYUTAI_KEY is unset: the server's refusal of a wrong key is not checked")
		}
		bad := cfg
		bad.APIKey = "greffier-conformance-wrong-key"
		k, err := transcribe.NewKyutai(bad)
		require.NoError(t, err)
		_, err = k.Transcribe(t.Context(), transcribe.Request{Audio: speech.audio, Language: "en"})
		he, ok := errors.AsType[*transcribe.HTTPError](err)
		require.True(t, ok, "want HTTP 401 before the upgrade, got %v", err)
		require.Equal(t, http.StatusUnauthorized, he.StatusCode)
		require.False(t, he.Temporary(), "a bad key stays bad")
	})
}
