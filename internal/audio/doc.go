// Package audio is Greffier's media toolbox, each primitive written once:
// the Opus TOC (packet lengths, CheckPacket for packets from the network)
// and OpusHead; EBML read as a pull parser (element headers, integers,
// Matroska ids) for the recorder's spool and the archive's reader; WebM
// files holding one Opus track read (ebml-go), either as packets with
// their times or decoded (pion/opus) into time-continuous 16 kHz mono
// frames; RFC 6464 audio levels of PCM and of packets; Ogg Opus read
// (packets placed by granule positions, or decoded) and written (packets
// copied, holes filled with silence frames); 16-bit WAV read and written.
//
// It is a leaf of pure media formats: it knows nothing of meetings,
// storage or jobs, and must not import any other Greffier package, so the
// leaves (transcribe, diarize, archive) may import it.
package audio
