package audio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// ErrNotWAV is returned by ReadWAV for input that is not a 16-bit PCM WAV.
var ErrNotWAV = errors.New("not a 16-bit PCM WAV")

// WAVHeaderLen is the size of the header WriteWAV, WAVHeader and
// EncodeWAV write: the canonical 44 bytes.
const WAVHeaderLen = 44

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
	if 2*n > math.MaxUint32-WAVHeaderLen {
		return nil, fmt.Errorf("write wav: %d samples do not fit in a RIFF file", n)
	}
	h := make([]byte, WAVHeaderLen)
	putWAVHeader(h, n, SampleRate)
	return h, nil
}

// EncodeWAV wraps mono PCM16 samples at rate Hz in a WAV file, in memory.
func EncodeWAV(pcm []int16, rate int) []byte {
	b := make([]byte, WAVHeaderLen+2*len(pcm))
	putWAVHeader(b, len(pcm), rate)
	for i, s := range pcm {
		binary.LittleEndian.PutUint16(b[WAVHeaderLen+2*i:], uint16(s))
	}
	return b
}

// putWAVHeader writes into h the header of a WAV of n samples, mono,
// 16-bit, at rate.
func putWAVHeader(h []byte, n, rate int) {
	dataSize := 2 * n
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(WAVHeaderLen-8+dataSize))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)             // fmt chunk size
	binary.LittleEndian.PutUint16(h[20:], 1)              // PCM
	binary.LittleEndian.PutUint16(h[22:], 1)              // mono
	binary.LittleEndian.PutUint32(h[24:], uint32(rate))   // sample rate
	binary.LittleEndian.PutUint32(h[28:], uint32(2*rate)) // byte rate
	binary.LittleEndian.PutUint16(h[32:], 2)              // block align
	binary.LittleEndian.PutUint16(h[34:], 16)             // bits per sample
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(dataSize))
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

// DecodeWAV reads a PCM16 WAV file held in memory (plain or
// WAVE_FORMAT_EXTENSIBLE, as opusdec and ffmpeg write) and returns its
// first channel and sample rate. Unlike ReadWAV it takes what tools write
// loosely: any channel count, and a data size left at 0 or 0xFFFFFFFF by
// a streaming writer (what is there is taken).
func DecodeWAV(b []byte) (pcm []int16, rate int, err error) {
	channels := 0
	err = wavChunks(b, func(id string, size int, body []byte) (bool, error) {
		switch id {
		case "fmt ":
			if size < 16 || len(body) < 16 {
				return false, errors.New("WAV fmt chunk is short")
			}
			format := binary.LittleEndian.Uint16(body[0:])
			if format == 0xFFFE && size >= 40 && len(body) >= 40 {
				format = binary.LittleEndian.Uint16(body[24:]) // the sub-format GUID's first two bytes
			}
			channels = int(binary.LittleEndian.Uint16(body[2:]))
			rate = int(binary.LittleEndian.Uint32(body[4:]))
			bits := binary.LittleEndian.Uint16(body[14:])
			if format != 1 || bits != 16 || channels < 1 || rate <= 0 {
				return false, fmt.Errorf("WAV is format %d, %d bits, %d channels at %d Hz; want PCM16", format, bits, channels, rate)
			}
		case "data":
			if channels == 0 {
				return false, errors.New("WAV has no fmt chunk before its data")
			}
			if size == 0 || size > len(body) {
				size = len(body)
			}
			pcm = make([]int16, size/(2*channels))
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(body[2*channels*i:]))
			}
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return nil, 0, err
	}
	return pcm, rate, nil
}

// WAVDuration reads a PCM WAV held in memory for the length of its data,
// from its header alone: the data size (what is there when the header
// leaves it at 0 or says more) over the byte rate.
func WAVDuration(b []byte) (time.Duration, error) {
	var bytesPerSecond, d int64
	err := wavChunks(b, func(id string, size int, body []byte) (bool, error) {
		switch id {
		case "fmt ":
			if len(body) < 16 {
				return false, errors.New("WAV fmt chunk is short")
			}
			bytesPerSecond = int64(binary.LittleEndian.Uint32(body[8:]))
		case "data":
			if bytesPerSecond <= 0 {
				return false, errors.New("WAV has no usable fmt chunk before its data")
			}
			if size == 0 || size > len(body) {
				size = len(body)
			}
			d = int64(size) * int64(time.Second) / bytesPerSecond
			return true, nil
		}
		return false, nil
	})
	return time.Duration(d), err
}

// wavChunks walks the chunks of a RIFF WAVE file held in b, giving fn each
// one's id, declared size and the bytes after its header (all that is
// left of b: a size may lie), until fn says it is done. It is an error if
// fn never is: the file has no data chunk.
func wavChunks(b []byte, fn func(id string, size int, body []byte) (done bool, err error)) error {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return errors.New("not a WAV file: no RIFF/WAVE header")
	}
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:]))
		done, err := fn(id, size, b[p+8:])
		if done || err != nil {
			return err
		}
		p += 8 + size + size%2
	}
	return errors.New("WAV has no data chunk")
}
