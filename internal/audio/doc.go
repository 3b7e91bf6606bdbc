// Package audio is Greffier's Opus plumbing for the speech path: it reads
// WebM files holding one Opus track (ebml-go), either as packets with their
// times or decoded (pion/opus) into time-continuous 16 kHz mono frames;
// measures RFC 6464 audio levels of PCM and of packets; and writes Ogg
// Opus (packets copied, holes filled with silence frames) and 16-bit WAV.
//
// It is a leaf: it knows nothing of meetings, storage or jobs, and must not
// import any other Greffier package.
package audio
