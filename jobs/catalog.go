package jobs

import (
	"context"
	"database/sql"

	"github.com/greffier/greffier/internal/store"
)

// Catalog is the recorder's catalog of tracks (recorder.Catalog) and does
// nothing else: track rows in the store, and, in the transaction that makes
// a track final, what the pipeline does next with it.
type Catalog struct {
	store *store.Store
	p     *Pipeline
}

// NewCatalog returns the catalog the recorder records tracks in, over the
// pipeline's store.
func NewCatalog(p *Pipeline) *Catalog { return &Catalog{store: p.store, p: p} }

// CreateTrack records a track that started recording.
func (c *Catalog) CreateTrack(ctx context.Context, t store.Track) error {
	return c.store.CreateTrack(ctx, t)
}

// RecordGap records a stretch of a track that is not being recorded, so
// the meeting's progress says so at once.
func (c *Catalog) RecordGap(ctx context.Context, g store.TrackGap) error {
	return c.store.RecordGap(ctx, g)
}

// FailTrack marks a track failed keeping its row's times and, the track
// being final, lets the minutes go on without it.
func (c *Catalog) FailTrack(ctx context.Context, trackID, failure string) error {
	return c.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		t, err := q.Track(ctx, trackID)
		if err != nil {
			return err
		}
		if err := q.FailTrack(ctx, trackID, failure); err != nil {
			return err
		}
		return c.p.trackFailed(ctx, tx, q, t)
	})
}

// FinishTrack records a track's final state and, in the same transaction,
// starts its processing.
func (c *Catalog) FinishTrack(ctx context.Context, t store.Track) error {
	return c.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		if err := q.FinishTrack(ctx, t); err != nil {
			return err
		}
		return c.p.trackFinished(ctx, tx, q, t)
	})
}

// SettleLostMedia records that what a lost media node recorded of a
// meeting is recovered (or that it came back), and, in the same
// transaction, moves the meeting's pipeline on: its minutes may now be
// assembled.
func (c *Catalog) SettleLostMedia(ctx context.Context, meetingID, node string) error {
	return c.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		if err := q.SettleLostMedia(ctx, meetingID, node); err != nil {
			return err
		}
		return c.p.maybeAssemble(ctx, tx, q, meetingID)
	})
}
