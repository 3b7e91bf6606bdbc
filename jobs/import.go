package jobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
)

// ErrUnsupportedFormat: the file is no audio format Greffier reads, or WAV
// or FLAC without an Opus encoder configured to turn it into what the
// pipeline reads.
var ErrUnsupportedFormat = errors.New("unsupported audio format")

// ErrUnreadable: the file says it is Ogg or WebM Opus but cannot be read
// to its end (damaged, cut short, no Opus track).
var ErrUnreadable = errors.New("unreadable audio")

// ErrNoDiarization: a mixed recording was sent but no diarization backend
// is configured to tell its voices apart.
var ErrNoDiarization = errors.New("no diarization backend is configured (GREFFIER_DIARIZE_URL): a mixed recording cannot be told apart into speakers")

// ImportFile is one recording to import: one speaker's, or, Mixed, a
// recording of several voices that the diarization backend tells apart
// (like a microphone shared in a live meeting).
type ImportFile struct {
	Identity, DisplayName string
	Mixed                 bool
	// Path is the complete file on local disk.
	Path string
}

// ImportRequest is a recorded meeting to turn into minutes.
type ImportRequest struct {
	Title, Language string
	// CreatedBy is the API key the meeting is created by (a host sees
	// its own meetings).
	CreatedBy string
	Files     []ImportFile
}

// FileError says which file of an import could not be read, and why.
type FileError struct {
	Index    int
	Identity string
	Err      error
}

func (e *FileError) Error() string {
	return fmt.Sprintf("file %d (%s): %v", e.Index, e.Identity, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// Probe tells a file's format by its content and reads it to its end: it
// returns the format and the length of its timeline, or an error wrapping
// ErrUnsupportedFormat or ErrUnreadable. WebM is read streaming; Ogg is
// read whole, as the remux does; WAV and FLAC are encoded to Ogg Opus by
// the configured encoder, which reads them.
func (p *Pipeline) Probe(ctx context.Context, path string) (audio.Format, time.Duration, error) {
	format, err := sniffFile(path)
	if err != nil {
		return format, 0, err
	}
	switch format {
	case audio.FormatWebMOpus:
		f, err := os.Open(path)
		if err != nil {
			return format, 0, err
		}
		defer f.Close()
		d, err := audio.WebMOpusDuration(ctx, bufio.NewReader(f))
		if err != nil {
			return format, 0, fmt.Errorf("%w: %v", ErrUnreadable, err)
		}
		return format, d, nil
	case audio.FormatOggOpus:
		d, err := remuxFile(io.Discard, path)
		return format, d, err
	case audio.FormatWAV, audio.FormatFLAC:
		ogg, cleanup, err := p.encodeOpus(ctx, path, format)
		if err != nil {
			return format, 0, err
		}
		defer cleanup()
		d, err := remuxFile(io.Discard, ogg)
		return format, d, err
	}
	return format, 0, fmt.Errorf("%w: neither WebM, Ogg, WAV nor FLAC", ErrUnsupportedFormat)
}

func sniffFile(path string) (audio.Format, error) {
	f, err := os.Open(path)
	if err != nil {
		return audio.FormatUnknown, err
	}
	defer f.Close()
	head := make([]byte, 12)
	n, _ := io.ReadFull(f, head)
	return audio.Sniff(head[:n]), nil
}

// remuxFile remuxes an Ogg Opus file to WebM on w.
func remuxFile(w io.Writer, path string) (time.Duration, error) {
	b, err := os.ReadFile(path) // about the size of the packets the remux holds anyway
	if err != nil {
		return 0, err
	}
	d, err := audio.RemuxOggToWebM(w, b)
	if err != nil && !errors.Is(err, audio.ErrNotOggOpus) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnreadable, err)
	}
	return d, nil
}

// encodeOpus encodes a WAV or FLAC file to a temporary Ogg Opus file with
// the configured encoder, at the bitrate and frame size of a WebRTC voice.
func (p *Pipeline) encodeOpus(ctx context.Context, path string, format audio.Format) (string, func(), error) {
	if p.cfg.OpusEncoder == "" {
		return "", nil, fmt.Errorf("%w: %s is imported only when an Opus encoder is configured (GREFFIER_IMPORT_OPUSENC, opus-tools' opusenc); "+
			"or convert it first, e.g. ffmpeg -i in.%s -c:a libopus -b:a 32k out.ogg", ErrUnsupportedFormat, format, format)
	}
	tmp, err := os.CreateTemp(p.cfg.TempDir, "import-*.opus")
	if err != nil {
		return "", nil, err
	}
	_ = tmp.Close()
	cleanup := func() { _ = os.Remove(tmp.Name()) }
	out, err := exec.CommandContext(ctx, p.cfg.OpusEncoder, "--quiet", "--bitrate", "32", "--framesize", "20",
		path, tmp.Name()).CombinedOutput()
	if err != nil {
		cleanup()
		if ctx.Err() != nil {
			return "", nil, ctx.Err()
		}
		msg := strings.TrimSpace(string(out))
		if len(msg) > 300 {
			msg = msg[:300]
		}
		return "", nil, fmt.Errorf("%w: the %s file could not be encoded: %s (%v)", ErrUnreadable, format, msg, err)
	}
	return tmp.Name(), cleanup, nil
}

// Import turns recordings into a meeting whose minutes are made as a live
// meeting's are: each file becomes one stored track starting at the
// meeting's zero, its speaker a participant, and the meeting ends at once,
// so the pipeline takes it from there. Every file is read before anything
// is stored; a file that cannot be read is a *FileError and leaves nothing
// behind, nor does a failure part-way (what was stored is deleted).
func (p *Pipeline) Import(ctx context.Context, req ImportRequest) (store.Meeting, error) {
	if len(req.Files) == 0 {
		return store.Meeting{}, errors.New("import: no files")
	}
	for _, f := range req.Files {
		if f.Mixed && p.voices == nil {
			return store.Meeting{}, ErrNoDiarization
		}
	}
	formats := make([]audio.Format, len(req.Files))
	for i, f := range req.Files {
		format, _, err := p.Probe(ctx, f.Path)
		if err != nil {
			return store.Meeting{}, &FileError{Index: i, Identity: f.Identity, Err: err}
		}
		formats[i] = format
	}
	m, err := p.store.CreateMeetingBy(ctx, req.Title, req.Language, req.CreatedBy)
	if err != nil {
		return store.Meeting{}, err
	}
	m, err = p.importInto(ctx, m, req, formats)
	if err != nil {
		// Nothing of a failed import stays.
		cctx, cancel := detached(ctx)
		defer cancel()
		if derr := p.deleteObjects(cctx, m.ID); derr != nil {
			err = errors.Join(err, derr)
		} else if derr := p.store.DeleteMeeting(cctx, m.ID); derr != nil {
			err = errors.Join(err, derr)
		}
		return store.Meeting{}, err
	}
	return m, nil
}

func (p *Pipeline) importInto(ctx context.Context, m store.Meeting, req ImportRequest, formats []audio.Format) (store.Meeting, error) {
	cat := NewCatalog(p)
	for i, f := range req.Files {
		if f.Mixed {
			if err := p.store.SetSharedMic(ctx, m.ID, f.Identity, true); err != nil {
				return m, err
			}
		}
		if _, err := p.store.Join(ctx, m.ID, f.Identity, f.DisplayName); err != nil {
			return m, err
		}
		t := store.Track{ID: store.NewID("trk"), MeetingID: m.ID, Identity: f.Identity, SSRC: uint32(i + 1)}
		t.BlobKey = layout.Track(m.ID, t.ID)
		length, info, err := p.storeImported(ctx, t.BlobKey, f.Path, formats[i])
		if err != nil {
			return m, fmt.Errorf("import file %d (%s): %w", i, f.Identity, err)
		}
		if err := cat.CreateTrack(ctx, t); err != nil {
			return m, err
		}
		t.State, t.DurationMS, t.Size, t.SHA256 = store.TrackStored, length.Milliseconds(), info.Size, info.SHA256
		if err := cat.FinishTrack(ctx, t); err != nil {
			return m, err
		}
	}
	return p.EndMeeting(ctx, m.ID)
}

// storeImported stores a file as a track's WebM: a WebM as it is, an Ogg
// remuxed.
func (p *Pipeline) storeImported(ctx context.Context, key, path string, format audio.Format) (time.Duration, blob.Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, blob.Info{}, err
	}
	defer f.Close()
	if format == audio.FormatWebMOpus {
		length, err := audio.WebMOpusDuration(ctx, bufio.NewReader(f))
		if err != nil {
			return 0, blob.Info{}, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return 0, blob.Info{}, err
		}
		info, err := p.blobs.Put(ctx, key, f, -1)
		return length, info, err
	}
	if format == audio.FormatWAV || format == audio.FormatFLAC {
		ogg, cleanup, err := p.encodeOpus(ctx, path, format)
		if err != nil {
			return 0, blob.Info{}, err
		}
		defer cleanup()
		path = ogg
	}
	// A local file, not a pipe: the blob store hashes a file in place,
	// and ebml-go's writer would block for ever on a destination that
	// stopped reading.
	tmp, err := os.CreateTemp(p.cfg.TempDir, "import-*.webm")
	if err != nil {
		return 0, blob.Info{}, err
	}
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	length, err := remuxFile(tmp, path)
	if err != nil {
		return 0, blob.Info{}, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return 0, blob.Info{}, err
	}
	info, err := p.blobs.Put(ctx, key, tmp, -1)
	return length, info, err
}
