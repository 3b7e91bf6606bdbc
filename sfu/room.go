package sfu

import (
	"cmp"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// room is one meeting's live media: its published tracks, its listeners,
// and which speaker each listener's slots carry. Slot choices are
// control-plane work done on a tick, never per packet.
type room struct {
	id  string
	cfg Config
	log *slog.Logger

	// identities counts each identity's sessions, for the participant cap
	// and for calling Leave once. Guarded by SFU.mu, not room.mu.
	identities map[string]int
	// joined holds the identities Meetings.Join accepted and the Observer
	// was told of; zero is the meeting clock's zero. Guarded by SFU.mu.
	joined map[string]bool
	zero   time.Time

	mu        sync.Mutex
	tracks    map[*publishedTrack]struct{}
	listeners map[*listener]struct{}
	cands     []candidate // reused by each selection
	events    []Event     // speaking changes found by a selection, reused

	kickc    chan struct{}
	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

type candidate struct {
	t     *publishedTrack
	score int32
}

// listener is a WHEP session's set of slots.
type listener struct {
	identity string
	slots    []*slotTrack
}

func newRoom(id string, cfg Config, log *slog.Logger) *room {
	return &room{
		id:         id,
		cfg:        cfg,
		log:        log.With("meeting", id),
		identities: make(map[string]int),
		joined:     make(map[string]bool),
		tracks:     make(map[*publishedTrack]struct{}),
		listeners:  make(map[*listener]struct{}),
		kickc:      make(chan struct{}, 1),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
	}
}

// run re-selects speakers on every tick, and at once when kicked (a new
// track's first packet, a new listener), so nobody waits a tick to be heard.
func (r *room) run() {
	defer close(r.done)
	tick := time.NewTicker(r.cfg.SelectInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.quit:
			return
		case <-tick.C:
		case <-r.kickc:
		}
		r.selectOnce(time.Now())
	}
}

func (r *room) stop() {
	r.stopOnce.Do(func() { close(r.quit) })
	<-r.done
}

func (r *room) kick() {
	select {
	case r.kickc <- struct{}{}:
	default:
	}
}

func (r *room) addTrack(t *publishedTrack) {
	r.mu.Lock()
	r.tracks[t] = struct{}{}
	r.mu.Unlock()
}

// removeTrack frees the slots t held, so other speakers can take them.
func (r *room) removeTrack(t *publishedTrack) {
	r.mu.Lock()
	var stopped *Event
	if t.speaking {
		t.speaking = false
		ev := t.event(EventSpeakingStopped, time.Now())
		stopped = &ev
	}
	defer func() {
		r.mu.Unlock()
		if stopped != nil {
			r.observe(*stopped)
		}
	}()
	delete(r.tracks, t)
	for l := range r.listeners {
		for _, s := range l.slots {
			if s.holder == t {
				s.holder = nil
				s.setSource(nil)
			}
		}
	}
	t.dests.Store(nil)
	r.kick()
}

func (r *room) addListener(l *listener) {
	r.mu.Lock()
	r.listeners[l] = struct{}{}
	r.mu.Unlock()
	r.kick()
}

func (r *room) removeListener(l *listener) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.listeners, l)
	for _, s := range l.slots {
		s.holder = nil
		s.setSource(nil)
	}
	r.rebuildDests()
}

// selectOnce ranks the active tracks by smoothed loudness and fills each
// listener's slots with the loudest others.
func (r *room) selectOnce(now time.Time) {
	r.mu.Lock()
	r.cands, r.events = r.cands[:0], r.events[:0]
	for t := range r.tracks {
		sc := t.score(now)
		t.tickScore = sc
		if sc > 0 {
			r.cands = append(r.cands, candidate{t: t, score: sc})
		}
		r.updateSpeaking(t, now)
	}
	r.assignAll(now)
	// The Observer is called without the lock: it may be slow-ish, and
	// packets of speakers changing slots wait on nothing but slot locks.
	events := r.events
	r.mu.Unlock()
	for _, ev := range events {
		r.observe(ev)
	}
}

func (r *room) observe(ev Event) {
	if r.cfg.Observer != nil {
		r.cfg.Observer.Observe(ev)
	}
}

// updateSpeaking turns t's smoothed level into speaking turns: a turn
// starts as soon as the level reaches SpeakingLevel and stops once it has
// stayed below for SwitchHold, so a breath between words is no new turn.
// Called with r.mu held.
func (r *room) updateSpeaking(t *publishedTrack, now time.Time) {
	last := t.lastAt.Load()
	active := last != 0 && now.UnixNano()-last <= int64(activeWindow)
	loud := active && t.hasLevel.Load() && t.loudness.Load()/16 >= int32(127-r.cfg.SpeakingLevel)
	switch {
	case loud:
		t.quietSince = time.Time{}
		if !t.speaking {
			t.speaking = true
			r.events = append(r.events, t.event(EventSpeakingStarted, now))
		}
	case t.speaking:
		if t.quietSince.IsZero() {
			t.quietSince = now
			if !active {
				// Packets stopped (the sender muted or left): the turn
				// ended with the last one, not a window later.
				t.quietSince = time.Unix(0, last)
			}
		}
		if now.Sub(t.quietSince) >= r.cfg.SwitchHold {
			t.speaking = false
			r.events = append(r.events, t.event(EventSpeakingStopped, t.quietSince))
		}
	}
}

// assignAll ranks the candidates and fills every listener's slots. Called
// with r.mu held.
func (r *room) assignAll(now time.Time) {
	slices.SortFunc(r.cands, func(a, b candidate) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		// Ties keep a stable order so equal speakers do not swap slots.
		return cmp.Compare(a.t.seq, b.t.seq)
	})
	changed := false
	for l := range r.listeners {
		if l.assign(r.cands, now, r.cfg.SwitchHold, int32(r.cfg.SwitchMargin)) {
			changed = true
		}
	}
	if changed {
		r.rebuildDests()
	}
}

// assign gives free slots to the loudest candidates, and lets a candidate
// take a held slot only from a holder that has kept it for hold and is at
// least margin quieter: the hysteresis that stops slots from flapping.
// It never gives a listener its own identity's voice.
func (l *listener) assign(cands []candidate, now time.Time, hold time.Duration, margin int32) bool {
	if len(l.slots) == 0 {
		return false
	}
	changed := false
	for _, c := range cands {
		if c.t.identity == l.identity || l.holds(c.t) {
			continue
		}
		var target *slotTrack
		for _, s := range l.slots {
			if s.holder == nil || s.holder.tickScore == 0 {
				target = s
				break
			}
		}
		if target == nil {
			// Candidates come loudest first and no slot is free: once one
			// cannot beat the quietest holder by margin, none after it can,
			// so a settled meeting costs each listener a few comparisons.
			weakest := l.slots[0].holder.tickScore
			for _, s := range l.slots[1:] {
				weakest = min(weakest, s.holder.tickScore)
			}
			if c.score < weakest+margin {
				break
			}
			for _, s := range l.slots {
				if now.Sub(s.since) < hold || c.score < s.holder.tickScore+margin {
					continue
				}
				if target == nil || s.holder.tickScore < target.holder.tickScore {
					target = s
				}
			}
		}
		if target == nil {
			continue
		}
		target.holder = c.t
		target.since = now
		target.setSource(c.t)
		changed = true
	}
	return changed
}

func (l *listener) holds(t *publishedTrack) bool {
	for _, s := range l.slots {
		if s.holder == t {
			return true
		}
	}
	return false
}

// rebuildDests publishes to each track the slots it now feeds. Tracks read
// the list with one atomic load per packet. Called with r.mu held.
func (r *room) rebuildDests() {
	dests := make(map[*publishedTrack][]*slotTrack, len(r.tracks))
	for l := range r.listeners {
		for _, s := range l.slots {
			if s.holder != nil {
				dests[s.holder] = append(dests[s.holder], s)
			}
		}
	}
	for t := range r.tracks {
		d := dests[t]
		t.dests.Store(&d)
	}
}
