package captions

import (
	"context"

	"github.com/greffier/greffier/transcribe"
)

// Kyutai opens captioning sessions on a Kyutai streaming server.
type Kyutai struct{ K *transcribe.Kyutai }

// Stream opens one session (Streamer).
func (s Kyutai) Stream(ctx context.Context, onWord func(transcribe.Word, bool)) (Stream, error) {
	st, err := s.K.Stream(ctx, onWord)
	if err != nil {
		return nil, err // not a nil *transcribe.KyutaiStream in a Stream
	}
	return st, nil
}
