package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ImportSpeaker is one speaker of an imported meeting: the identity its
// file's track is recorded under, and whether that file holds several
// voices for the diarization backend to tell apart.
type ImportSpeaker struct {
	Identity, DisplayName string
	SharedMic             bool
}

// ImportProgress says how far an import's job is: of Files, FilesDone are
// stored as tracks.
type ImportProgress struct {
	Files, FilesDone int
	UpdatedAt        time.Time
}

// CreateImport stores meeting id (NewID("mtg")) in state importing, its speakers as
// participants and its progress (no file done), in the transaction q is
// bound to, which also enqueues the job that imports the files. The
// meeting clock starts at its creation: the files start there.
func (q Queries) CreateImport(ctx context.Context, id, title, language, keyID string, speakers []ImportSpeaker) (Meeting, error) {
	now := q.now().UTC().Truncate(time.Millisecond)
	m := Meeting{ID: id, Title: title, Language: language, State: MeetingImporting, CreatedAt: now,
		StartedAt: now, CreatedBy: keyID, KeepAudio: true}
	if _, err := q.q.ExecContext(ctx, `INSERT INTO meetings (id, title, state, language, created_at, started_at, updated_at, created_by)
		VALUES ($1, $2, $3, $4, $5, $5, $5, $6)`, m.ID, m.Title, m.State, m.Language, toMS(now), keyID); err != nil {
		return Meeting{}, fmt.Errorf("create imported meeting: %w", err)
	}
	for _, s := range speakers {
		if _, err := q.q.ExecContext(ctx, `INSERT INTO participants (meeting_id, identity, display_name, joined_at)
			VALUES ($1, $2, $3, $4)`, m.ID, s.Identity, s.DisplayName, toMS(now)); err != nil {
			return Meeting{}, fmt.Errorf("record participant %s: %w", s.Identity, err)
		}
		if s.SharedMic {
			if err := q.SetSharedMic(ctx, m.ID, s.Identity, true); err != nil {
				return Meeting{}, err
			}
		}
	}
	if _, err := q.q.ExecContext(ctx, `INSERT INTO imports (meeting_id, files, files_done, updated_at) VALUES ($1, $2, 0, $3)`,
		m.ID, len(speakers), toMS(now)); err != nil {
		return Meeting{}, fmt.Errorf("record import of %s: %w", m.ID, err)
	}
	return m, nil
}

// SetImportProgress records how many of an import's files are stored.
func (q Queries) SetImportProgress(ctx context.Context, meetingID string, done int) error {
	if _, err := q.q.ExecContext(ctx, `UPDATE imports SET files_done = $1, updated_at = $2 WHERE meeting_id = $3`,
		done, toMS(q.now()), meetingID); err != nil {
		return fmt.Errorf("record import progress of %s: %w", meetingID, err)
	}
	return nil
}

// ImportProgress returns a meeting's import progress, or ErrNotFound for
// a meeting that was not imported.
func (q Queries) ImportProgress(ctx context.Context, meetingID string) (ImportProgress, error) {
	var (
		p       ImportProgress
		updated int64
	)
	err := q.q.QueryRowContext(ctx, `SELECT files, files_done, updated_at FROM imports WHERE meeting_id = $1`, meetingID).
		Scan(&p.Files, &p.FilesDone, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("import of %s: %w", meetingID, ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("read import of %s: %w", meetingID, err)
	}
	p.UpdatedAt = time.UnixMilli(updated).UTC()
	return p, nil
}
