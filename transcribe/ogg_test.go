package transcribe_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// oggSpeech is an Ogg Opus file of alice's tone speech, the words in it
// on its own timeline, and the same audio as a WAV decoded by the
// reference decoder (opusdec): what Greffier sent before it sent Ogg.
type oggSpeech struct {
	name  string
	ogg   []byte
	wav   []byte
	words []transcribetest.TimedWord
	// length is the audio's, read from opusdec's WAV.
	length time.Duration
}

// aliceSpeech is alice's meeting fixture two ways: as opusenc wrote it
// (fifty packets a page, pre-skip 312) and re-muxed as Greffier writes
// Ogg Opus (pion's oggwriter: a packet a page, pre-skip 3840).
func aliceSpeech(t *testing.T) []oggSpeech {
	t.Helper()
	dir := filepath.Join("..", "testdata", "meeting")
	raw, err := os.ReadFile(filepath.Join(dir, "alice.opus"))
	require.NoError(t, err)
	script, err := transcribetest.ReadScript(filepath.Join(dir, "script.json"))
	require.NoError(t, err)
	cut, start, err := transcribetest.CutOggOpus(raw, 0, 0)
	require.NoError(t, err)
	var out []oggSpeech
	for _, s := range []struct {
		name  string
		ogg   []byte
		start time.Duration
	}{{"opusenc", raw, 0}, {"pion oggwriter", cut, start}} {
		var words []transcribetest.TimedWord
		for _, w := range script.Words("alice") {
			words = append(words, transcribetest.TimedWord{Text: w.Text, Start: w.Start - s.start, End: w.End - s.start})
		}
		wav := referenceWAV(t, s.ogg)
		pcm, rate, err := transcribetest.DecodeWAV(wav)
		require.NoError(t, err)
		out = append(out, oggSpeech{name: s.name, ogg: s.ogg, wav: wav, words: words, length: time.Duration(len(pcm)) * time.Second / time.Duration(rate)})
	}
	return out
}

// referenceWAV decodes Ogg Opus with opusdec to a 16 kHz WAV.
func referenceWAV(t *testing.T, ogg []byte) []byte {
	t.Helper()
	opusdec, err := exec.LookPath("opusdec")
	require.NoError(t, err, "install opus-tools (apt-get install opus-tools)")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.opus"), filepath.Join(dir, "out.wav")
	require.NoError(t, os.WriteFile(in, ogg, 0o600))
	msg, err := exec.CommandContext(t.Context(), opusdec, "--quiet", "--rate", "16000", in, out).CombinedOutput()
	require.NoError(t, err, string(msg))
	wav, err := os.ReadFile(out)
	require.NoError(t, err)
	return wav
}

// TestOpenAISendsOggOpusAsItIs: servers that read Ogg Opus get the file
// untouched, named .ogg, and hear the words at the times the same audio
// as a WAV gives, within 30 ms. Duration comes from the granule positions.
func TestOpenAISendsOggOpusAsItIs(t *testing.T) {
	t.Parallel()
	for _, sp := range aliceSpeech(t) {
		for name, opts := range map[string]transcribetest.Options{
			"openai": {},
			"vLLM":   {Quirk: transcribetest.QuirkVLLM},
		} {
			t.Run(sp.name+", "+name, func(t *testing.T) {
				t.Parallel()
				b := setup(t, opts, transcribe.OpenAIConfig{})
				fromOgg, err := b.tr.Transcribe(t.Context(), transcribe.Request{Audio: sp.ogg, Language: "en"})
				require.NoError(t, err)
				fromWAV, err := b.tr.Transcribe(t.Context(), transcribe.Request{Audio: sp.wav, Language: "en"})
				require.NoError(t, err)

				got := b.srv.Received()
				require.Len(t, got, 2)
				require.Equal(t, "audio.ogg", got[0].Filename)
				require.Contains(t, got[0].ContentType, "ogg")
				require.Equal(t, len(sp.ogg), got[0].Size, "sent as it is")
				require.Equal(t, "audio.wav", got[1].Filename)

				require.Equal(t, sp.length, fromOgg.Duration, "Duration from the granule positions")
				require.Equal(t, fromWAV.Text, fromOgg.Text)
				require.Equal(t, "alpha bravo charlie delta india juliett kilo", fromOgg.Text)
				require.Equal(t, fromWAV.WordsEstimated, fromOgg.WordsEstimated)
				requireWords(t, asTimed(fromWAV.Words), fromOgg.Words, 30*time.Millisecond)
				if !fromOgg.WordsEstimated {
					requireWords(t, sp.words, fromOgg.Words, 60*time.Millisecond)
				}
			})
		}
	}
}

// TestOpenAIDecodesOggOpusForWAVOnlyServers: whisper.cpp's path implies
// SendWAV, which any server can ask for; the server gets a 16 kHz WAV of
// the audio and hears what it hears from the reference decoder's WAV.
func TestOpenAIDecodesOggOpusForWAVOnlyServers(t *testing.T) {
	t.Parallel()
	require.True(t, transcribe.OpenAIConfig{Path: "/inference"}.WithDefaults().SendWAV, "whisper.cpp's path")
	require.True(t, transcribe.OpenAIConfig{Path: "/whisper/inference"}.WithDefaults().SendWAV, "under a --request-path")
	require.False(t, transcribe.OpenAIConfig{}.WithDefaults().SendWAV)
	for _, sp := range aliceSpeech(t) {
		for name, tc := range map[string]struct {
			opts transcribetest.Options
			cfg  func(*transcribetest.Server) transcribe.OpenAIConfig
		}{
			"whisper.cpp at /inference": {
				opts: transcribetest.Options{Quirk: transcribetest.QuirkWhisperCpp, Path: "/inference"},
				cfg: func(s *transcribetest.Server) transcribe.OpenAIConfig {
					return transcribe.OpenAIConfig{BaseURL: s.URL(), Path: "/inference"}
				},
			},
			"SendWAV": {
				cfg: func(s *transcribetest.Server) transcribe.OpenAIConfig {
					return transcribe.OpenAIConfig{BaseURL: s.BaseURL(), SendWAV: true}
				},
			},
		} {
			t.Run(sp.name+", "+name, func(t *testing.T) {
				t.Parallel()
				srv := transcribetest.NewServer(tc.opts)
				t.Cleanup(srv.Close)
				tr, err := transcribe.NewOpenAI(tc.cfg(srv))
				require.NoError(t, err)
				fromOgg, err := tr.Transcribe(t.Context(), transcribe.Request{Audio: sp.ogg})
				require.NoError(t, err)
				fromWAV, err := tr.Transcribe(t.Context(), transcribe.Request{Audio: sp.wav})
				require.NoError(t, err)

				got := srv.Received()
				require.Len(t, got, 2)
				require.Equal(t, "audio.wav", got[0].Filename)
				require.Contains(t, got[0].ContentType, "wav")
				require.Equal(t, len(sp.wav), got[0].Size, "as long as the reference decoder's WAV")
				require.Equal(t, sp.length, fromOgg.Duration)
				require.Equal(t, "alpha bravo charlie delta india juliett kilo", fromOgg.Text)
				requireWords(t, asTimed(fromWAV.Words), fromOgg.Words, 30*time.Millisecond)
				requireWords(t, sp.words, fromOgg.Words, 60*time.Millisecond)
			})
		}
	}
}

// TestWhisperCppRefusesOggOpus: a whisper.cpp server on a path that does
// not say so, configured without SendWAV, gets Ogg Opus and answers as the
// real one does, 200 with an error; the client takes that for a bad
// answer, not for silence.
func TestWhisperCppRefusesOggOpus(t *testing.T) {
	t.Parallel()
	sp := aliceSpeech(t)[1]
	srv := transcribetest.NewServer(transcribetest.Options{Quirk: transcribetest.QuirkWhisperCpp, Path: "/stt"})
	t.Cleanup(srv.Close)
	tr, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: srv.URL(), Path: "/stt"})
	require.NoError(t, err)
	_, err = tr.Transcribe(t.Context(), transcribe.Request{Audio: sp.ogg, ExpectSpeech: true})
	require.ErrorIs(t, err, transcribe.ErrBadAnswer)
	require.ErrorContains(t, err, "failed to read audio data")
	require.Equal(t, "audio.ogg", srv.Received()[0].Filename)

	res, err := tr.Transcribe(t.Context(), transcribe.Request{Audio: sp.wav})
	require.NoError(t, err, "the same server reads WAV")
	require.Equal(t, "alpha bravo charlie delta india juliett kilo", res.Text)
}

func TestDiarizedOggOpus(t *testing.T) {
	t.Parallel()
	sp := aliceSpeech(t)[0]
	clip, _, err := transcribetest.CutOggOpus(sp.ogg, 500*time.Millisecond, 3*time.Second)
	require.NoError(t, err)
	b := setup(t, transcribetest.Options{}, transcribe.OpenAIConfig{Model: "gpt-4o-transcribe-diarize", Diarized: true})
	res, err := b.tr.Transcribe(t.Context(), transcribe.Request{
		Audio:         sp.ogg,
		KnownSpeakers: []transcribe.KnownSpeaker{{Name: "Alice", Audio: clip}},
	})
	require.NoError(t, err)
	require.Equal(t, sp.length, res.Duration)
	require.Len(t, res.Phrases, 2)
	for i, s := range res.Phrases {
		require.Equal(t, "Alice", s.Speaker, "named from her Ogg Opus clip")
		require.InDelta(t, []time.Duration{sp.words[0].Start, sp.words[4].Start}[i], s.Start, float64(30*time.Millisecond))
	}
	got := b.srv.Received()[0]
	require.Equal(t, "audio.ogg", got.Filename)
	require.Equal(t, "audio/ogg", got.ContentType)
	require.Equal(t, 1, got.KnownSpeakerReferences)
}

func TestKyutaiTranscribesOggOpus(t *testing.T) {
	t.Parallel()
	for _, sp := range aliceSpeech(t) {
		t.Run(sp.name, func(t *testing.T) {
			t.Parallel()
			b := setupKyutai(t, kyutaiest{})
			b.cfg.LeadingSilence = 960 * time.Millisecond // sent at 24 kHz too, and subtracted
			k := b.client(t)
			fromOgg, err := k.Transcribe(t.Context(), transcribe.Request{Audio: sp.ogg, Language: "en"})
			require.NoError(t, err)
			fromWAV, err := k.Transcribe(t.Context(), transcribe.Request{Audio: sp.wav, Language: "en"})
			require.NoError(t, err)
			require.Equal(t, sp.length, fromOgg.Duration)
			require.Equal(t, "alpha bravo charlie delta india juliett kilo", fromOgg.Text)
			requireWordsNear(t, sp.words, fromOgg.Words, 100*time.Millisecond)
			requireWordsNear(t, asTimed(fromWAV.Words), fromOgg.Words, 80*time.Millisecond)

			// Decoded straight to 24 kHz: the server got the audio, the
			// leading silence and the padding, at that rate.
			sessions := b.srv.Sessions()
			require.Len(t, sessions, 2)
			pad := int64((b.cfg.LeadingSilence + b.cfg.EndPadding).Seconds() * 24000)
			require.GreaterOrEqual(t, sessions[0].Received, int64(sp.length.Seconds()*24000)+pad)
		})
	}
}

// TestOggOpusRefusedBeforeSending: a file that starts as Ogg but is not
// Ogg Opus, or would be too large as WAV, is an invalid request with a
// clear reason, and nothing is sent.
func TestOggOpusRefusedBeforeSending(t *testing.T) {
	t.Parallel()
	sp := aliceSpeech(t)[0]
	garbage := append([]byte("OggS"), make([]byte, 300)...)
	cut := sp.ogg[:len(sp.ogg)-200]

	b := setup(t, transcribetest.Options{}, transcribe.OpenAIConfig{})
	for name, req := range map[string]transcribe.Request{
		"garbage":                   {Audio: garbage},
		"garbage with its Duration": {Audio: garbage, Duration: time.Second},
		"cut short":                 {Audio: cut},
	} {
		_, err := b.tr.Transcribe(t.Context(), req)
		require.ErrorIs(t, err, transcribe.ErrInvalidRequest, name)
		require.ErrorContains(t, err, "audio starts with OggS but is not a readable Ogg Opus file", name)
		t.Logf("%s: %v", name, err)
	}
	require.Zero(t, b.srv.Requests())

	small := setup(t, transcribetest.Options{}, transcribe.OpenAIConfig{SendWAV: true, MaxUpload: 100_000})
	_, err := small.tr.Transcribe(t.Context(), transcribe.Request{Audio: sp.ogg})
	require.ErrorIs(t, err, transcribe.ErrInvalidRequest)
	require.ErrorContains(t, err, "decoded to WAV would be 288044 bytes, more than the 100000")
	require.Zero(t, small.srv.Requests())

	kb := setupKyutai(t, kyutaiest{})
	_, err = kb.client(t).Transcribe(t.Context(), transcribe.Request{Audio: garbage})
	require.ErrorIs(t, err, transcribe.ErrInvalidRequest)
	require.ErrorContains(t, err, "not a readable Ogg Opus file")
	_, err = kb.client(t).Transcribe(t.Context(), transcribe.Request{Audio: []byte("ID3 an mp3")})
	require.ErrorIs(t, err, transcribe.ErrInvalidRequest)
	require.ErrorContains(t, err, "neither a WAV nor an Ogg Opus file")
	require.Zero(t, kb.srv.Handshakes())
	require.False(t, errors.Is(err, transcribe.ErrBadAnswer))
}

func asTimed(words []transcribe.Word) []transcribetest.TimedWord {
	out := make([]transcribetest.TimedWord, len(words))
	for i, w := range words {
		out[i] = transcribetest.TimedWord{Text: w.Text, Start: w.Start, End: w.End}
	}
	return out
}
