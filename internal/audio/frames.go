package audio

import "fmt"

// frameWriter cuts a stream of samples into FrameSamples frames for the
// caller, reusing one frame.
type frameWriter struct {
	fn    func([]int16) error
	frame [FrameSamples]int16
	fill  int
	pos   int64 // samples written so far, silence included
}

func (w *frameWriter) write(s []int16) error {
	for len(s) > 0 {
		n := copy(w.frame[w.fill:], s)
		s = s[n:]
		if err := w.advance(n); err != nil {
			return err
		}
	}
	return nil
}

func (w *frameWriter) silence(n int64) error {
	for n > 0 {
		k := int(min(n, int64(FrameSamples-w.fill)))
		clear(w.frame[w.fill : w.fill+k])
		n -= int64(k)
		if err := w.advance(k); err != nil {
			return err
		}
	}
	return nil
}

func (w *frameWriter) advance(n int) error {
	w.fill += n
	w.pos += int64(n)
	if w.fill < FrameSamples {
		return nil
	}
	w.fill = 0
	if err := w.fn(w.frame[:]); err != nil {
		return fmt.Errorf("decode webm: frame handler: %w", err)
	}
	return nil
}

// flush hands out the last, partial frame padded with silence.
func (w *frameWriter) flush() error {
	if w.fill == 0 {
		return nil
	}
	clear(w.frame[w.fill:])
	w.fill = 0
	if err := w.fn(w.frame[:]); err != nil {
		return fmt.Errorf("decode webm: frame handler: %w", err)
	}
	return nil
}
