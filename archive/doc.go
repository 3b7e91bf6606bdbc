// Package archive builds a meeting's whole-meeting downloads from its
// per-speaker WebM recordings: one multi-track WebM holding every speaker as
// their own Opus track on the meeting clock (packets copied, so lossless),
// and one mono FLAC mixdown of everyone, decoded once and never re-encoded
// lossily.
//
// Both stream: inputs are read block by block and merged by time, opened
// only when the meeting clock reaches them, so memory depends on how many
// segments overlap in time, not on the meeting's length.
//
// It is a leaf like internal/audio: it knows tracks only as readers with a
// speaker and a start time, and must not import the store, blob storage,
// jobs or any other Greffier package.
package archive
