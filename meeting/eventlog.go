package meeting

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/sfu"
)

// eventQueue bounds the events waiting to be stored; past it they are
// dropped (and counted) rather than hold up the SFU.
const eventQueue = 4096

// EventLog stores the SFU's events (joins, leaves, speaking turns) on the
// meeting clock (sfu.Observer), from one goroutine so that each meeting's
// log is in order.
type EventLog struct {
	st      *store.Store
	log     *slog.Logger
	ch      chan sfu.Event
	done    chan struct{}
	once    sync.Once
	dropped int
	started bool
	stopped bool // ch is closed
	mu      sync.Mutex
}

// NewEventLog stores events in st; Start starts storing them.
func NewEventLog(st *store.Store, logger *slog.Logger) *EventLog {
	return &EventLog{st: st, log: logger, ch: make(chan sfu.Event, eventQueue), done: make(chan struct{})}
}

// Observe queues an event without waiting (sfu.Observer). An event
// observed after Stop is dropped: a session whose closing outlived a
// stop's deadline may still report its leaving.
func (l *EventLog) Observe(e sfu.Event) {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	select {
	case l.ch <- e:
		l.mu.Unlock()
	default:
		l.dropped++
		n := l.dropped
		l.mu.Unlock()
		if n&(n-1) == 0 { // 1st, 2nd, 4th… drop
			l.log.Warn("meeting events dropped: the database is not keeping up", "dropped", n)
		}
	}
}

// Start stores events until Stop.
func (l *EventLog) Start() {
	l.mu.Lock()
	l.started = true
	l.mu.Unlock()
	go func() {
		defer close(l.done)
		for e := range l.ch {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := l.st.AddEvent(ctx, store.Event{MeetingID: e.MeetingID, AtMS: e.At.Sub(e.ClockZero).Milliseconds(),
				Kind: string(e.Kind), Identity: e.Identity})
			cancel()
			if err != nil {
				l.log.Error("store meeting event", "meeting", e.MeetingID, "err", err)
			}
		}
	}()
}

// Stop stores what is queued and returns; call it after the SFU stopped.
func (l *EventLog) Stop() {
	l.once.Do(func() {
		l.mu.Lock()
		l.stopped = true
		close(l.ch)
		l.mu.Unlock()
	})
	l.mu.Lock()
	started := l.started
	l.mu.Unlock()
	if started {
		<-l.done
	}
}
