package jobs

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/upload"
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
	Identity    string `json:"identity"`
	DisplayName string `json:"display_name"`
	Mixed       bool   `json:"mixed,omitempty"`
	// Upload is the complete upload session holding the file.
	Upload string `json:"upload"`
}

// ImportRequest is a recorded meeting to turn into minutes.
type ImportRequest struct {
	Title, Language string
	// CreatedBy is the API key the meeting is created by (a host sees
	// its own meetings).
	CreatedBy string
	Files     []ImportFile
	Retention store.RetentionChange
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

// ImportArgs asks for an importing meeting's files to be stored as its
// tracks.
type ImportArgs struct {
	MeetingID string       `json:"meeting_id"`
	Files     []ImportFile `json:"files"`
}

func (ImportArgs) Kind() string { return "import_meeting" }

// InsertOpts makes one import job per meeting.
func (ImportArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// CheckFormat tells a file's format by its first bytes, cheaply (nothing
// else is read), and refuses what the import cannot take: no audio format
// Greffier reads, or WAV or FLAC without an encoder (ErrUnsupportedFormat).
// Whether the content is readable to its end is for the import job to say.
func (p *Pipeline) CheckFormat(path string) (audio.Format, error) {
	format, err := sniffFile(path)
	if err != nil {
		return format, err
	}
	switch format {
	case audio.FormatWebMOpus, audio.FormatOggOpus:
		return format, nil
	case audio.FormatWAV, audio.FormatFLAC:
		if p.cfg.OpusEncoder == "" {
			return format, fmt.Errorf("%w: %s is imported only when an Opus encoder is configured (GREFFIER_IMPORT_OPUSENC, opus-tools' opusenc); "+
				"or convert it first, e.g. ffmpeg -i in.%s -c:a libopus -b:a 32k out.ogg", ErrUnsupportedFormat, format, format)
		}
		return format, nil
	}
	return format, fmt.Errorf("%w: neither WebM, Ogg, WAV nor FLAC", ErrUnsupportedFormat)
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

// remuxFile remuxes an Ogg Opus file to WebM on w, streaming.
func remuxFile(w io.Writer, path string) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	d, err := audio.RemuxOggToWebM(w, bufio.NewReader(f))
	if errors.Is(err, audio.ErrNotOggOpus) {
		return 0, fmt.Errorf("%w: %v", ErrUnreadable, err)
	}
	return d, err
}

// encodeOpus encodes a WAV or FLAC file to a temporary Ogg Opus file with
// the configured encoder, at the bitrate and frame size of a WebRTC voice.
// The file is tmp: a name of its own per meeting and file, so that a
// re-run after a crash overwrites what the crash left.
func (p *Pipeline) encodeOpus(ctx context.Context, path, tmp string, format audio.Format) (string, func(), error) {
	if _, err := p.CheckFormat(path); err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.Remove(tmp) }
	out, err := exec.CommandContext(ctx, p.cfg.OpusEncoder, "--quiet", "--bitrate", "32", "--framesize", "20",
		path, tmp).CombinedOutput()
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
	return tmp, cleanup, nil
}

// StartImport records an import and leaves the work to a job: it claims
// the complete uploads (so nobody else uses or changes them), checks each
// file's format by its first bytes, and in one transaction creates the
// meeting in state importing, with its speakers, retention and progress,
// and enqueues the job. A file of a format the import cannot take is a
// *FileError; nothing is created then, and the uploads are given back.
func (p *Pipeline) StartImport(ctx context.Context, req ImportRequest) (store.Meeting, error) {
	if len(req.Files) == 0 {
		return store.Meeting{}, errors.New("import: no files")
	}
	if p.uploads == nil {
		return store.Meeting{}, errors.New("import: no upload store configured")
	}
	for _, f := range req.Files {
		if f.Mixed && p.voices == nil {
			return store.Meeting{}, ErrNoDiarization
		}
	}
	id := store.NewID("mtg")
	claimed := 0
	unclaim := func() {
		for _, f := range req.Files[:claimed] {
			if err := p.uploads.Unclaim(f.Upload, id); err != nil {
				p.log.Warn("upload not given back", "upload", f.Upload, "err", err)
			}
		}
	}
	speakers := make([]store.ImportSpeaker, len(req.Files))
	for i, f := range req.Files {
		if _, err := p.uploads.Claim(f.Upload, id); err != nil {
			unclaim()
			return store.Meeting{}, &FileError{Index: i, Identity: f.Identity, Err: err}
		}
		claimed++
		path, err := p.uploadPath(f.Upload)
		if err == nil {
			_, err = p.CheckFormat(path)
		}
		if err != nil {
			unclaim()
			return store.Meeting{}, &FileError{Index: i, Identity: f.Identity, Err: err}
		}
		speakers[i] = store.ImportSpeaker{Identity: f.Identity, DisplayName: f.DisplayName, SharedMic: f.Mixed}
	}
	if p.cfg.SharedUploads {
		if err := p.shareUploads(ctx, id, req.Files); err != nil {
			unclaim()
			return store.Meeting{}, err
		}
	}
	var m store.Meeting
	err := p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		var err error
		if m, err = q.CreateImport(ctx, id, req.Title, req.Language, req.CreatedBy, speakers); err != nil {
			return err
		}
		if _, err := q.SetRetention(ctx, id, req.Retention); err != nil {
			return err
		}
		if _, err := p.client.InsertTx(ctx, tx, ImportArgs{MeetingID: id, Files: req.Files}, nil); err != nil {
			return fmt.Errorf("enqueue import of %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		unclaim()
		if p.cfg.SharedUploads {
			if _, derr := p.blobs.DeletePrefix(context.WithoutCancel(ctx), layout.MeetingPrefix(id)); derr != nil {
				p.log.Warn("copies of uploads not removed", "meeting", id, "err", derr)
			}
		}
		return store.Meeting{}, err
	}
	if p.cfg.SharedUploads {
		// The job reads the copies: the local files are no longer needed.
		p.removeUploads(ImportArgs{MeetingID: id, Files: req.Files})
	}
	p.log.Info("meeting importing", "meeting", id, "title", req.Title, "files", len(req.Files))
	return m, nil
}

// shareUploads copies an import's uploads to blob storage, where any node
// reads them.
func (p *Pipeline) shareUploads(ctx context.Context, meetingID string, files []ImportFile) error {
	for i, f := range files {
		file, sess, err := p.uploads.Open(f.Upload)
		if err != nil {
			return &FileError{Index: i, Identity: f.Identity, Err: err}
		}
		_, err = p.blobs.Put(ctx, layout.ImportUpload(meetingID, i), file, sess.Length)
		_ = file.Close()
		if err != nil {
			return fmt.Errorf("copy upload %d of %s to storage: %w", i, meetingID, err)
		}
	}
	return nil
}

// openImportFile opens the i-th file of an import: the upload on this
// node's disk, or its copy in storage (SharedUploads), fetched to tmp,
// which the returned cleanup removes.
func (p *Pipeline) openImportFile(ctx context.Context, meetingID string, i int, uploadID, tmp string) (*os.File, func(), error) {
	f, _, err := p.uploads.Open(uploadID)
	if err == nil || !p.cfg.SharedUploads || !errors.Is(err, upload.ErrNotFound) {
		return f, func() {}, err
	}
	rc, err := p.blobs.Get(ctx, layout.ImportUpload(meetingID, i))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: its copy in storage is gone: %w", upload.ErrNotFound, err)
	}
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	local, err := os.Create(tmp + ".upload")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() {
		_ = local.Close()
		_ = os.Remove(local.Name())
	}
	if _, err := io.Copy(local, rc); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("fetch upload %d of %s: %w", i, meetingID, err)
	}
	if _, err := local.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, nil, err
	}
	return local, cleanup, nil
}

func (p *Pipeline) uploadPath(id string) (string, error) {
	f, _, err := p.uploads.Open(id)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return f.Name(), nil
}

type importWorker struct {
	river.WorkerDefaults[ImportArgs]
	p *Pipeline
}

// Timeout gives a remux or an encode time in proportion to the files'
// size, at a pace a loaded machine keeps (about 1 MB/s for an encode).
func (w *importWorker) Timeout(job *river.Job[ImportArgs]) time.Duration {
	var size int64
	for _, f := range job.Args.Files {
		if s, err := w.p.uploads.Stat(f.Upload); err == nil {
			size += s.Length
		}
	}
	return 5*time.Minute + time.Duration(size/(1<<20))*time.Second
}

// Work stores each file as a track's WebM, then in one transaction
// records the tracks and ends the meeting (the pipeline takes it from
// there). Every step can be done again: objects have keys of their own
// per meeting and file, and no row is written before the last step, so a
// crash part-way is finished by the next attempt. A file that cannot be
// read fails the meeting, saying which and why, and leaves none of its
// objects, temporary files or uploads behind; so does the last attempt's
// failure.
func (w *importWorker) Work(ctx context.Context, job *river.Job[ImportArgs]) error {
	p, id := w.p, job.Args.MeetingID
	m, err := p.store.Meeting(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		p.removeUploads(job.Args)
		return nil
	case err != nil:
		return err
	case m.State != store.MeetingImporting:
		// Done before a crash, failed, or being deleted.
		p.removeUploads(job.Args)
		return nil
	}
	tracks := make([]store.Track, len(job.Args.Files))
	for i, f := range job.Args.Files {
		t := store.Track{ID: importTrackID(id, i), MeetingID: id, Identity: f.Identity, SSRC: uint32(i + 1)}
		t.BlobKey = layout.Track(id, t.ID)
		length, info, err := p.storeImported(ctx, t.BlobKey, id, i, f.Upload, p.importTemp(id, i))
		if err != nil {
			err = fmt.Errorf("file %d (%s): %w", i, f.Identity, err)
			if errors.Is(err, ErrUnreadable) || errors.Is(err, ErrUnsupportedFormat) || errors.Is(err, upload.ErrNotFound) ||
				job.Attempt >= job.MaxAttempts {
				return river.JobCancel(p.failImport(ctx, job.Args, err))
			}
			return p.importStopped(ctx, job.Args, err)
		}
		t.State, t.DurationMS, t.Size, t.SHA256 = store.TrackStored, length.Milliseconds(), info.Size, info.SHA256
		tracks[i] = t
		if err := p.store.SetImportProgress(ctx, id, i+1); err != nil {
			return p.importStopped(ctx, job.Args, err)
		}
	}
	err = p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		if err := q.LockMeeting(ctx, id); err != nil {
			return err
		}
		for _, t := range tracks {
			if err := q.CreateTrack(ctx, t); err != nil {
				return err
			}
			if err := q.FinishTrack(ctx, t); err != nil {
				return err
			}
		}
		if m, err = q.Transition(ctx, id, store.MeetingEnded, ""); err != nil {
			return err
		}
		if err := p.detectAll(ctx, tx, q, m); err != nil {
			return err
		}
		return p.maybeArchive(ctx, tx, q, id)
	})
	if err != nil {
		return p.importStopped(ctx, job.Args, err)
	}
	p.log.Info("meeting ended", "meeting", id, "title", m.Title, "imported_files", len(tracks))
	p.removeUploads(job.Args)
	if p.cfg.SharedUploads {
		for i := range job.Args.Files {
			if err := p.blobs.Delete(ctx, layout.ImportUpload(id, i)); err != nil {
				p.log.Warn("copy of an imported upload not removed", "meeting", id, "file", i, "err", err)
			}
		}
	}
	return nil
}

// importTrackID is the id of an imported meeting's i-th track: the same
// on every attempt, so that a re-run overwrites what a crash left.
func importTrackID(meetingID string, i int) string {
	return fmt.Sprintf("trk_%si%d", strings.TrimPrefix(meetingID, "mtg_"), i)
}

// importTemp is where the i-th file of an import is remuxed or encoded:
// a name of its own, so that a re-run after a crash overwrites it.
func (p *Pipeline) importTemp(meetingID string, i int) string {
	dir := p.cfg.TempDir
	if dir == "" {
		dir = os.TempDir()
	}
	return filepath.Join(dir, fmt.Sprintf("import-%s-%d", meetingID, i))
}

// importStopped is an attempt's error; when the meeting is being deleted
// meanwhile, the uploads go too (its deletion knows nothing of them).
func (p *Pipeline) importStopped(ctx context.Context, args ImportArgs, err error) error {
	cctx, cancel := detached(ctx)
	defer cancel()
	if m, merr := p.store.Meeting(cctx, args.MeetingID); errors.Is(merr, store.ErrNotFound) ||
		(merr == nil && m.State == store.MeetingDeleting) {
		p.removeUploads(args)
	}
	return err
}

// failImport removes what an import stored, then marks the meeting
// failed with why, then removes its uploads: a crash part-way leaves the
// meeting importing, for the next attempt to fail again.
func (p *Pipeline) failImport(ctx context.Context, args ImportArgs, cause error) error {
	cctx, cancel := detached(ctx)
	defer cancel()
	id := args.MeetingID
	if err := p.deleteObjects(cctx, id); err != nil {
		return errors.Join(cause, err)
	}
	for i := range args.Files {
		for _, ext := range []string{".webm", ".opus"} {
			_ = os.Remove(p.importTemp(id, i) + ext)
		}
	}
	m, err := p.store.Transition(cctx, id, store.MeetingFailed, "import: "+cause.Error())
	var te *store.TransitionError
	switch {
	case err == nil:
		p.announce(m, EventMeetingFailed, 0)
	case !errors.As(err, &te) && !errors.Is(err, store.ErrNotFound):
		return errors.Join(cause, err)
	}
	p.removeUploads(args)
	return cause
}

func (p *Pipeline) removeUploads(args ImportArgs) {
	for _, f := range args.Files {
		if err := p.uploads.Remove(f.Upload); err != nil {
			p.log.Warn("imported upload not removed", "upload", f.Upload, "err", err)
		}
	}
}

// storeImported stores an upload as a track's WebM: a WebM as it is,
// checked to its end; an Ogg remuxed; WAV or FLAC encoded, then remuxed.
// tmp names the temporary files (tmp.webm, tmp.opus).
func (p *Pipeline) storeImported(ctx context.Context, key, meetingID string, i int, uploadID, tmp string) (time.Duration, blob.Info, error) {
	f, cleanup, err := p.openImportFile(ctx, meetingID, i, uploadID, tmp)
	if err != nil {
		return 0, blob.Info{}, err
	}
	defer cleanup()
	defer f.Close()
	path := f.Name()
	format, err := p.CheckFormat(path)
	if err != nil {
		return 0, blob.Info{}, err
	}
	if format == audio.FormatWebMOpus {
		length, err := audio.WebMOpusDuration(ctx, bufio.NewReader(f))
		if err != nil {
			return 0, blob.Info{}, fmt.Errorf("%w: %v", ErrUnreadable, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return 0, blob.Info{}, err
		}
		info, err := p.blobs.Put(ctx, key, f, -1)
		return length, info, err
	}
	if format == audio.FormatWAV || format == audio.FormatFLAC {
		ogg, cleanup, err := p.encodeOpus(ctx, path, tmp+".opus", format)
		if err != nil {
			return 0, blob.Info{}, err
		}
		defer cleanup()
		path = ogg
	}
	// A local file, not a pipe: the blob store hashes a file in place,
	// and ebml-go's writer would block for ever on a destination that
	// stopped reading.
	out, err := os.Create(tmp + ".webm")
	if err != nil {
		return 0, blob.Info{}, err
	}
	defer func() {
		_ = out.Close()
		_ = os.Remove(out.Name())
	}()
	length, err := remuxFile(out, path)
	if err != nil {
		return 0, blob.Info{}, err
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return 0, blob.Info{}, err
	}
	info, err := p.blobs.Put(ctx, key, out, -1)
	return length, info, err
}
