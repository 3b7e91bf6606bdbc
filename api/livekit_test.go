package api_test

import (
	"context"
	"errors"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/livekit"
)

// fakeRooms records LiveKit rooms in the store without joining any: the
// real source is tested against a real livekit-server in cmd/greffier.
type fakeRooms struct {
	store *store.Store
	*livekit.Webhooks
}

func (f fakeRooms) Record(ctx context.Context, room, title, language, createdBy string) (store.Meeting, bool, error) {
	return f.store.RecordLiveKitRoom(ctx, room, title, language, createdBy)
}

func (f fakeRooms) RoomStarted(ctx context.Context, room string) (store.Meeting, bool, error) {
	m, _, err := f.Record(ctx, room, "", "", "")
	return m, err == nil, err
}

func (f fakeRooms) RoomFinished(ctx context.Context, room string) error {
	id, err := f.store.LiveKitMeeting(ctx, room)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = f.store.Transition(ctx, id, store.MeetingEnded, "")
	return err
}
