package recorder

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrDiskFull is wrapped by errors about the spool disk running out of
// space: a DiskSpaceError from Open, and a track's write failure.
var ErrDiskFull = errors.New("spool disk full")

// DiskSpaceError is returned (wrapped) by Open when SpoolDir's file system
// has less free space than Config.MinFreeBytes: recording would fail
// mid-meeting, so it does not start.
type DiskSpaceError struct {
	Dir  string
	Free int64 // bytes available to the process
	Min  int64 // Config.MinFreeBytes
}

func (e *DiskSpaceError) Error() string {
	return fmt.Sprintf("spool disk nearly full: %s has %s free, less than the %s needed to record (MinFreeBytes); "+
		"free space there or point SpoolDir at a larger disk", e.Dir, mib(e.Free), mib(e.Min))
}

// Is makes errors.Is(err, ErrDiskFull) hold.
func (e *DiskSpaceError) Is(target error) bool { return target == ErrDiskFull }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// checkSpace returns a *DiskSpaceError if dir's file system has less than
// min bytes available (min <= 0: no check).
func checkSpace(dir string, min int64) error {
	if min <= 0 {
		return nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("check free space in %s: %w", dir, err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free < min {
		return &DiskSpaceError{Dir: dir, Free: free, Min: min}
	}
	return nil
}

// spoolFailure is the reason recorded for a track whose spool could not
// be written: a full disk says so and what to do.
func spoolFailure(err error, dir string) string {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Sprintf("the local disk holding the spool is full (%v): the audio after that point was not recorded; "+
			"free space under %s or point SpoolDir at a larger disk", err, dir)
	}
	return fmt.Sprintf("writing the recording to local disk failed: %v", err)
}
