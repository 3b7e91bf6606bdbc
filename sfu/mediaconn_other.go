//go:build !linux

package sfu

// sysConn and sysBatch are empty where there is no sendmmsg.
type (
	sysConn  struct{}
	sysBatch struct{}
)

func (c *mediaConn) initSys() error { return nil }

// send writes b's datagrams one call each.
func (c *mediaConn) send(b *sendBatch) error {
	var first error
	for i := range b.n {
		if _, err := c.WriteToUDPAddrPort(b.bufs[i], b.addrs[i]); err != nil && first == nil {
			first = err
		}
	}
	return first
}
