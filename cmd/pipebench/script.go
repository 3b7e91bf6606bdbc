package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/audio"
)

// tick is one Opus packet's worth of meeting time: every participant sends
// at most one packet per tick, as a browser does with 20 ms frames.
const tick = 20 * time.Millisecond

// ticksOf is d in whole ticks.
func ticksOf(d time.Duration) int { return int(d / tick) }

// clip is one utterance of a fixture: its packets and how many words the
// script says it holds.
type clip struct {
	packets [][]byte
	words   int
}

// voice is one fixture speaker: what it says, and a packet of its silence.
type voice struct {
	name    string
	clips   []clip
	silence [][]byte
	// levels is each packet's RFC 6464 level, by its first byte's address
	// (packets are slices of one read), as a browser would send it.
	levels map[*byte]uint8
}

// Pauses between a turn's utterances: alternately shorter than the voice
// activity detector's hangover (400 ms, the two utterances stay one speech
// segment) and longer (a new segment), so segments are of a few seconds,
// as in conversation, and their number is known.
var pauses = [2]time.Duration{300 * time.Millisecond, 1200 * time.Millisecond}

// margin is the fixture audio kept around each utterance: its silence
// lets the Opus decoder settle and the words start and end cleanly.
const margin = 100 * time.Millisecond

// scriptFile is testdata/meeting/script.json, the fixtures' source.
type scriptFile struct {
	Utterances []struct {
		Speaker string  `json:"speaker"`
		Start   float64 `json:"start"`
		End     float64 `json:"end"`
		Words   []struct {
			Text string `json:"text"`
		} `json:"words"`
	} `json:"utterances"`
}

// loadVoices reads every fixture speaker of dir (its script.json and one
// <speaker>.opus each) and cuts each utterance out of its packets.
func loadVoices(dir string) ([]voice, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "script.json"))
	if err != nil {
		return nil, fmt.Errorf("read fixture script: %w", err)
	}
	var sf scriptFile
	if err := json.Unmarshal(raw, &sf); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, "script.json"), err)
	}
	var voices []voice
	byName := map[string]int{}
	for _, u := range sf.Utterances {
		i, ok := byName[u.Speaker]
		if !ok {
			packets, err := readOggOpus(filepath.Join(dir, u.Speaker+".opus"))
			if err != nil {
				return nil, fmt.Errorf("fixture %s: %w", u.Speaker, err)
			}
			levels, err := measure(packets)
			if err != nil {
				return nil, fmt.Errorf("fixture %s: %w", u.Speaker, err)
			}
			i = len(voices)
			byName[u.Speaker] = i
			voices = append(voices, voice{name: u.Speaker, silence: packets, levels: levels})
		}
		v := &voices[i]
		from := ticksOf(time.Duration(u.Start*float64(time.Second)) - margin)
		to := ticksOf(time.Duration(u.End*float64(time.Second))+margin) + 1
		all := v.silence // still the whole file until the loop below ends
		if from < 0 || to > len(all) {
			return nil, fmt.Errorf("fixture %s: utterance %.1f-%.1f s outside its %d packets", u.Speaker, u.Start, u.End, len(all))
		}
		v.clips = append(v.clips, clip{packets: all[from:to], words: len(u.Words)})
	}
	if len(voices) == 0 {
		return nil, errors.New("fixture script has no utterances")
	}
	// Each voice's silence is the longest stretch of its file outside
	// every utterance, so a silent participant sends real Opus silence.
	for i := range voices {
		v := &voices[i]
		var best [2]int
		prev := 0
		for _, u := range sf.Utterances {
			if u.Speaker != v.name {
				continue
			}
			start := ticksOf(time.Duration(u.Start*float64(time.Second)) - 2*margin)
			if start-prev > best[1]-best[0] {
				best = [2]int{prev, start}
			}
			prev = ticksOf(time.Duration(u.End*float64(time.Second))+2*margin) + 1
		}
		if len(v.silence)-prev > best[1]-best[0] {
			best = [2]int{prev, len(v.silence)}
		}
		if best[1]-best[0] < 10 {
			return nil, fmt.Errorf("fixture %s has no silence of 200 ms", v.name)
		}
		v.silence = v.silence[best[0]:best[1]]
	}
	return voices, nil
}

// turn is one speaker's turn: from tick start, the voice's paragraph.
type turn struct {
	start   int
	speaker int
	para    *paragraph
}

// paragraph is what a speaker says in one turn: the packet of each tick
// (nil in a pause), and how many words it holds.
type paragraph struct {
	voice   *voice
	packets [][]byte // nil for a pause tick
	words   int
}

// newParagraph strings the voice's utterances together with pauses until
// at least length, and ends on a long pause so its last words form a
// closed segment before the next speaker.
func newParagraph(v *voice, length time.Duration) *paragraph {
	p := &paragraph{voice: v}
	for i := 0; len(p.packets) == 0 || time.Duration(len(p.packets))*tick < length; i++ {
		c := v.clips[i%len(v.clips)]
		p.packets = append(p.packets, c.packets...)
		p.words += c.words
		p.packets = append(p.packets, make([][]byte, ticksOf(pauses[i%2]))...)
	}
	if n := ticksOf(pauses[1]); len(p.packets) < n || p.packets[len(p.packets)-n] != nil {
		p.packets = append(p.packets, make([][]byte, n)...)
	}
	return p
}

// meeting is the whole script: who says what at every tick.
type meeting struct {
	speakers int
	ticks    int
	turns    []turn
	voices   []voice
	words    int // words in every turn: what the minutes must hold
	speech   time.Duration
}

// newMeeting schedules speakers in turn (speaker i uses voice i mod the
// fixtures) for length; a turn that would not end before length is left
// out, so every word said is whole.
func newMeeting(voices []voice, speakers int, length, turnLength time.Duration) *meeting {
	m := &meeting{speakers: speakers, ticks: ticksOf(length), voices: voices}
	paras := make([]*paragraph, len(voices))
	for i := range voices {
		paras[i] = newParagraph(&voices[i], turnLength)
	}
	for at, s := ticksOf(time.Second), 0; ; s = (s + 1) % speakers {
		p := paras[s%len(voices)]
		if at+len(p.packets) > m.ticks {
			break
		}
		m.turns = append(m.turns, turn{start: at, speaker: s, para: p})
		m.words += p.words
		for _, pk := range p.packets {
			if pk != nil {
				m.speech += tick
			}
		}
		at += len(p.packets)
	}
	return m
}

// dtxEvery is how often a participant in DTX sends a packet while silent:
// Opus sends one comfort-noise frame every 400 ms.
const dtxEvery = 20

// packet returns what speaker s sends at tick t (nil: nothing, as in DTX),
// given the latest turn to have started by t (index into m.turns, or -1).
func (m *meeting) packet(s, t, ti int, dtx bool) []byte {
	if ti >= 0 {
		tr := m.turns[ti]
		if i := t - tr.start; tr.speaker == s && i < len(tr.para.packets) && tr.para.packets[i] != nil {
			return tr.para.packets[i]
		}
	}
	if dtx && t%dtxEvery != 0 {
		return nil
	}
	sil := m.voices[s%len(m.voices)].silence
	return sil[t%len(sil)]
}

// level is the RFC 6464 level of packet p sent by speaker s.
func (m *meeting) level(s int, p []byte) uint8 {
	return m.voices[s%len(m.voices)].levels[&p[0]]
}

// measure decodes a fixture's packets in order and returns their levels.
func measure(packets [][]byte) (map[*byte]uint8, error) {
	l, err := audio.NewPacketLeveler()
	if err != nil {
		return nil, err
	}
	levels := make(map[*byte]uint8, len(packets))
	for i, p := range packets {
		lv, err := l.Level(p)
		if err != nil {
			return nil, fmt.Errorf("packet %d: %w", i, err)
		}
		levels[&p[0]] = uint8(lv)
	}
	return levels, nil
}

// readOggOpus returns the audio packets of an Ogg Opus file (RFC 7845), in
// order. The fixtures hold 20 ms packets only, which the recorder and
// this script rely on: any other size is an error.
func readOggOpus(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("open ogg: %w", err)
	}
	_, ps, err := audio.OggOpusPackets(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	packets := make([][]byte, len(ps))
	for i, p := range ps {
		// One frame (code 0) of 20 ms: 960 samples at 48 kHz.
		if p.Data[0]&3 != 0 || p.Samples != 960 {
			return nil, fmt.Errorf("ogg packet %d is not one 20 ms Opus frame (TOC %#x)", i, p.Data[0])
		}
		packets[i] = p.Data
	}
	if len(packets) == 0 {
		return nil, fmt.Errorf("%s: no audio packets", strings.TrimSuffix(filepath.Base(path), ".opus"))
	}
	return packets, nil
}
