package recorder

// Timeline: where a track's blocks sit inside the track.
//
// A track's StartMS (its first block on the meeting clock) is fixed when
// that block is written: the first packet's arrival. The Listener gets it
// then, so it can never change afterwards without the live path and a
// later decode of the file disagreeing. Everything RTCP sender reports
// teach later goes into the block times instead:
//
//   - Before any report, a block's time is its RTP time since the first
//     block at the nominal clock rate (48 kHz), so gaps stay gaps.
//   - Once reports exist, the target time of a block is the sender's
//     wall-clock time of its RTP timestamp (the reports' least-squares
//     line, srClock) minus the track's wall start (ClockZero + StartMS).
//     That corrects the sender's clock drift (a +100 ppm sound card is
//     1.08 s ahead after 3 hours) and the first packet's network delay.
//     When the sender's wall clock disagrees with ours by more than
//     Config.SenderClockSkew, only the reports' rate is used: the target
//     is measured from the first block's fitted wall time instead.
//   - Blocks are steered towards the target, never jumped onto it: in
//     continuous audio a block may sit at most 1/slewDiv of the previous
//     block's length (0.4 ms per 20 ms) away from right after it, which
//     the decoder's 2 ms tolerance absorbs; a silence before a block (DTX,
//     loss) may shrink or grow by up to its whole length, so corrections
//     land in pauses whenever there are pauses. Times stay strictly
//     increasing and a block never overlaps the one before by more than
//     the slew.
//
// The file, the Listener, checkpoints and Recover all see these same
// times; nothing is corrected after the fact.

// slewDiv bounds the correction in continuous audio to 1/slewDiv of the
// audio between two blocks: 2 %, 0.4 ms per 20 ms packet. A 150 ms
// network delay is absorbed in 7.5 s of uninterrupted speech (at the
// first pause otherwise); a 100 ppm drift needs 0.01 %.
const slewDiv = 50

// timeline places blocks on the track clock. It is owned by the spool
// goroutine's drain, under Writer.mu (it reads the sender-report fit).
type timeline struct {
	rate    int64 // ticks per second
	started bool
	// anchorTS/anchorUS: the last block whose place was corrected (or the
	// first block): uncorrected blocks follow it at the nominal rate, so
	// tick-to-µs rounding never accumulates.
	anchorTS, anchorUS int64
	lastTS             int64 // media ticks of the last block
	lastDur            int64 // its nominal length, µs
	lastUS             int64 // its place before rounding, µs
	lastMS             int64 // its written time, ms
	// lastNominalUS is where raw RTP ticks would have put the last block.
	lastNominalUS int64
	zeroTS        int64
}

// place returns the time in ms of a block at media time ts that lasts
// samples (at 48 kHz). target is where the sender reports say it belongs,
// in µs on the track clock, when ok. It allocates nothing.
func (tl *timeline) place(ts int64, samples int32, target int64, ok bool) int64 {
	dur := int64(samples) * 1e6 / 48000
	if !tl.started {
		tl.started = true
		tl.zeroTS, tl.anchorTS = ts, ts
		tl.lastTS, tl.lastDur = ts, dur
		return 0
	}
	adv := (ts - tl.lastTS) * 1e6 / tl.rate // > 0: the sequencer releases increasing times
	cand := tl.anchorUS + (ts-tl.anchorTS)*1e6/tl.rate
	next := cand
	if ok && target != cand {
		contiguous := min(adv, tl.lastDur)
		gap := adv - contiguous
		slew := contiguous / slewDiv
		// Bounds are taken around where the previous block really is,
		// so they hold even after rounding of the anchor.
		here := tl.lastUS + adv
		next = min(max(target, here-gap-slew), here+gap+slew)
		tl.anchorTS, tl.anchorUS = ts, next
	}
	ms := floorDiv(next, 1000)
	if ms <= tl.lastMS {
		ms = tl.lastMS + 1 // two blocks within a millisecond: keep strict order
	}
	tl.lastTS, tl.lastDur, tl.lastUS, tl.lastMS = ts, dur, next, ms
	tl.lastNominalUS = (ts - tl.zeroTS) * 1e6 / tl.rate
	return ms
}

// endMS is where the last block's audio ends, ms on the track clock.
func (tl *timeline) endMS() int64 {
	return max(tl.lastMS+tl.lastDur/1000, floorDiv(tl.lastUS+tl.lastDur, 1000))
}

// correctionMS is how far the last block sits from its place at the
// nominal rate: the drift and offset corrections applied so far.
func (tl *timeline) correctionMS() int64 {
	return (tl.lastUS - tl.lastNominalUS) / 1000
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
