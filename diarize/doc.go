// Package diarize says who spoke when. Each Greffier participant has a
// track of their own, so on those tracks "who" is given and the job is
// voice activity: Segmenter finds the stretches of speech in one track's
// PCM and cuts them, with a little padding, into segments short enough for
// a transcription backend. Overlapping speech across participants survives
// untouched, since every track is segmented alone.
//
// Mixed audio (a room microphone, an imported recording) needs a real
// diarization backend; that will live here too, behind its own type.
//
// The package works on PCM in memory only: it must not import storage,
// the database, jobs or anything that knows what a meeting is.
package diarize
