// Package audio turns recorded tracks into the PCM Greffier's speech path
// works on: it reads WebM files holding one Opus track (ebml-go), decodes
// them (pion/opus) into time-continuous 16 kHz mono frames, and reads and
// writes 16-bit WAV.
//
// It is a leaf: it knows nothing of meetings, storage or jobs, and must not
// import any other Greffier package.
package audio
