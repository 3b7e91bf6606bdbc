package audio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// ErrNotWAV is returned by ReadWAV for input that is not a 16-bit PCM WAV.
var ErrNotWAV = errors.New("not a 16-bit PCM WAV")

const wavHeaderSize = 44

// WriteWAV writes samples as a RIFF WAV: mono, 16-bit, SampleRate.
func WriteWAV(w io.Writer, samples []int16) error {
	h, err := WAVHeader(len(samples))
	if err != nil {
		return err
	}
	if _, err := w.Write(h); err != nil {
		return fmt.Errorf("write wav header: %w", err)
	}
	var buf [4096]byte
	for len(samples) > 0 {
		n := min(len(samples), len(buf)/2)
		for i, s := range samples[:n] {
			binary.LittleEndian.PutUint16(buf[2*i:], uint16(s))
		}
		if _, err := w.Write(buf[:2*n]); err != nil {
			return fmt.Errorf("write wav data: %w", err)
		}
		samples = samples[n:]
	}
	return nil
}

// WAVHeader is the 44-byte header of a WAV of n samples (mono, 16-bit,
// SampleRate), for writers that stream the samples after it.
func WAVHeader(n int) ([]byte, error) {
	dataSize := 2 * n
	if dataSize > math.MaxUint32-wavHeaderSize {
		return nil, fmt.Errorf("write wav: %d samples do not fit in a RIFF file", n)
	}
	h := make([]byte, wavHeaderSize)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(wavHeaderSize-8+dataSize))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)           // fmt chunk size
	binary.LittleEndian.PutUint16(h[20:], 1)            // PCM
	binary.LittleEndian.PutUint16(h[22:], 1)            // mono
	binary.LittleEndian.PutUint32(h[24:], SampleRate)   // sample rate
	binary.LittleEndian.PutUint32(h[28:], SampleRate*2) // byte rate
	binary.LittleEndian.PutUint16(h[32:], 2)            // block align
	binary.LittleEndian.PutUint16(h[34:], 16)           // bits per sample
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(dataSize))
	return h, nil
}

// ReadWAV reads a mono 16-bit PCM WAV and returns its samples and rate. It
// is strict: anything else (stereo, float, 8 or 24 bits, a truncated data
// chunk) is an error wrapping ErrNotWAV that says what was found. Chunks
// other than fmt and data are skipped.
func ReadWAV(r io.Reader) (samples []int16, rate int, err error) {
	var riff [12]byte
	if _, err := io.ReadFull(r, riff[:]); err != nil {
		return nil, 0, fmt.Errorf("read wav: %w: header: %w", ErrNotWAV, err)
	}
	if string(riff[0:4]) != "RIFF" || string(riff[8:12]) != "WAVE" {
		return nil, 0, fmt.Errorf("read wav: %w: no RIFF/WAVE signature", ErrNotWAV)
	}
	haveFmt := false
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			return nil, 0, fmt.Errorf("read wav: %w: no data chunk: %w", ErrNotWAV, err)
		}
		id, size := string(ch[0:4]), binary.LittleEndian.Uint32(ch[4:8])
		switch id {
		case "fmt ":
			if rate, err = readFmt(r, size); err != nil {
				return nil, 0, err
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, 0, fmt.Errorf("read wav: %w: data chunk before fmt chunk", ErrNotWAV)
			}
			if size%2 != 0 {
				return nil, 0, fmt.Errorf("read wav: %w: data chunk of %d bytes is not whole 16-bit samples", ErrNotWAV, size)
			}
			samples, err = readSamples(r, size)
			if err != nil {
				return nil, 0, err
			}
			return samples, rate, nil
		default:
			// RIFF pads odd-sized chunks to an even length.
			if _, err := io.CopyN(io.Discard, r, int64(size)+int64(size%2)); err != nil {
				return nil, 0, fmt.Errorf("read wav: %w: chunk %q truncated: %w", ErrNotWAV, id, err)
			}
		}
	}
}

func readFmt(r io.Reader, size uint32) (int, error) {
	if size < 16 || size > 1<<10 {
		return 0, fmt.Errorf("read wav: %w: fmt chunk of %d bytes", ErrNotWAV, size)
	}
	b := make([]byte, size+size%2)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, fmt.Errorf("read wav: %w: fmt chunk truncated: %w", ErrNotWAV, err)
	}
	format := binary.LittleEndian.Uint16(b[0:])
	channels := binary.LittleEndian.Uint16(b[2:])
	rate := binary.LittleEndian.Uint32(b[4:])
	bits := binary.LittleEndian.Uint16(b[14:])
	switch {
	case format != 1:
		return 0, fmt.Errorf("read wav: %w: format tag %d, want 1 (integer PCM)", ErrNotWAV, format)
	case channels != 1:
		return 0, fmt.Errorf("read wav: %w: %d channels, want mono", ErrNotWAV, channels)
	case bits != 16:
		return 0, fmt.Errorf("read wav: %w: %d bits per sample, want 16", ErrNotWAV, bits)
	case rate == 0 || rate > 384000:
		return 0, fmt.Errorf("read wav: %w: sample rate %d", ErrNotWAV, rate)
	}
	return int(rate), nil
}

// readSamples reads size bytes of samples without trusting size for the
// allocation: a lying header must not make us reserve 4 GiB up front.
func readSamples(r io.Reader, size uint32) ([]int16, error) {
	samples := make([]int16, 0, min(size/2, 1<<20))
	var buf [4096]byte
	for left := int64(size); left > 0; {
		n := int(min(left, int64(len(buf))))
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return nil, fmt.Errorf("read wav: %w: data chunk truncated after %d of %d bytes: %w",
				ErrNotWAV, int64(size)-left, size, err)
		}
		for i := 0; i < n; i += 2 {
			samples = append(samples, int16(binary.LittleEndian.Uint16(buf[i:])))
		}
		left -= int64(n)
	}
	return samples, nil
}
