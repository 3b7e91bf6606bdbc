// Package diarize says who spoke when. Each Greffier participant has a
// track of their own, so on those tracks "who" is given and the job is
// voice activity: VoiceDetector finds the stretches of speech in one track's
// PCM and cuts them, with a little padding, into segments short enough for
// a transcription backend. Overlapping speech across participants survives
// untouched, since every track is segmented alone.
//
// Mixed audio (a room microphone, an imported recording, a participant
// sharing one microphone) needs a real diarization backend: Pyannote drives
// a pyannote-style job API over HTTP (upload or presigned URL, POST
// /v1/diarize, signed webhook with polling as the fallback) and returns
// checked Turns with anonymous labels, relative to the audio sent; Names
// turns those labels into display names. diarizetest is its test double.
//
// The package works on PCM in memory and on URLs it is given: it must not
// import storage, the database, jobs or anything that knows what a meeting
// is; the caller presigns or reads the audio and places turns on the
// meeting clock.
package diarize
