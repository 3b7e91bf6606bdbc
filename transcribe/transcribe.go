// Package transcribe turns a stretch of speech into words with times, by
// asking a speech backend over the network. Its one job is the backends'
// wire protocols, their quirks, and checking what they answer; it knows
// nothing of meetings, storage, jobs or the meeting clock (callers add the
// segment's offset), and must not import any other Greffier package.
package transcribe

import (
	"context"
	"errors"
	"time"
)

// Request is one stretch of audio to transcribe.
type Request struct {
	// Audio is a WAV (16 kHz mono PCM16) or an Ogg Opus file (RFC 7845:
	// one logical stream, mono or stereo, any packet length; Greffier
	// writes 48 kHz mono in 20 ms packets, with pion's oggwriter's
	// pre-skip of 3840), told apart by their first bytes ("RIFF....WAVE",
	// "OggS"). Times in the Result count from the first sample a player
	// plays: for Ogg Opus, the first after the pre-skip. Backends send
	// Ogg Opus as it is to servers that read it and decode it for those
	// that do not.
	Audio []byte
	// Duration is the audio's length. Zero means: read it from the file
	// (a WAV's header; an Ogg Opus file's last granule position less its
	// first and the pre-skip, at 48 kHz).
	Duration time.Duration
	// Language is an ISO-639-1 code ("en", "fr"); empty means the
	// backend's default (for OpenAIConfig, its Language).
	Language string
	// Prompt is text the model should continue from: the end of what the
	// same speaker said before this audio. Backends whose protocol takes
	// no prompt (Kyutai streaming, diarized_json) ignore it.
	Prompt string
	// Vocabulary lists words the audio may hold that a model can only
	// spell right if told (the meeting's title, the participants' names,
	// a host's glossary), most important first. The OpenAI-compatible
	// backend sends them as the prompt's leading part (bounded, see
	// MaxVocabularyPrompt); backends without a prompt or hint field
	// ignore them.
	Vocabulary []string
	// ExpectSpeech says a voice detector found speech in Audio. Guard then
	// takes an empty transcript for a bad answer (ErrEmptyTranscript,
	// which the job layer retries) instead of silence.
	ExpectSpeech bool
	// KnownSpeakers names the voices a diarizing backend should label
	// with names instead of A, B, ...; other backends ignore it.
	KnownSpeakers []KnownSpeaker
}

// KnownSpeaker is a voice a diarizing backend may recognise.
type KnownSpeaker struct {
	// Name is the label the backend gives that voice's phrases.
	Name string
	// Audio is a 2 to 10 s WAV or Ogg Opus file of that voice alone.
	Audio []byte
}

// Word is one recognised word, its times from the start of the audio sent.
type Word struct {
	Text       string
	Start, End time.Duration
}

// Phrase is a stretch of text the backend grouped (its "segment"), times
// as for Word.
type Phrase struct {
	Text       string
	Start, End time.Duration
	// Speaker is the voice's label from a diarizing backend ("A", "B",
	// or a KnownSpeaker's Name); empty from the others.
	Speaker string
}

// Result is a checked transcript: every time is finite, inside the audio,
// and in order.
type Result struct {
	// Language is what the backend reports (a code or a name such as
	// "english", depending on the server), else the one asked for.
	Language string
	Text     string
	// Duration is the audio's length as the backend measured it.
	Duration time.Duration
	Phrases  []Phrase
	Words    []Word
	// WordsEstimated is true when the backend gave no word times (vLLM,
	// OpenAI's gpt-4o models) and Words were spread over their phrases'
	// times in proportion to their length: good to a few hundred
	// milliseconds, enough to place words in minutes, not to cut audio.
	WordsEstimated bool
}

// Transcriber is a speech-to-text backend.
type Transcriber interface {
	Transcribe(ctx context.Context, req Request) (Result, error)
}

var (
	// ErrBadAnswer means the backend answered 2xx with something that is
	// not a usable transcript: malformed JSON, or times that are not
	// finite, outside the audio, or out of order. Retrying rarely helps.
	ErrBadAnswer = errors.New("transcription backend gave an unusable answer")
	// ErrInvalidRequest means the request was refused before it was sent
	// (empty audio, too large, neither WAV nor Ogg Opus, an unreadable WAV
	// header or Ogg Opus file). Retrying cannot help.
	ErrInvalidRequest = errors.New("invalid transcription request")
)
