package load

import (
	"context"
	"testing"
	"time"
)

// TestAKeepaliveBehindASlowUploadIsNotTakenForADeadServer: the keepalive
// request goes out on the same TCP connection, behind up to a channel
// window (2 MiB) of the upload's data; on a link slower than the window
// per KeepAlive interval (2 MiB / 30 s, about 70 KiB/s, by default) its
// answer came later than the next interval, and keepAlive closed a
// connection the server answered on all along (every write acked): the
// upload was cut and started over on a new connection, cut again (found
// by a review). SFTP answers meanwhile now count as signs of life. Scaled:
// 256 KiB/s, KeepAlive 300 ms.
func TestAKeepaliveBehindASlowUploadIsNotTakenForADeadServer(t *testing.T) {
	t.Parallel()
	p := startSFTPTest(t, nil)
	_, s, dials := behindProxy(t, p, 256<<10, func(cfg *SFTPConfig) { cfg.KeepAlive = 300 * time.Millisecond })
	c := randomContent(1<<20, 40) // 4 s at 256 KiB/s
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	begin := time.Now()
	err := s.Upload(ctx, "TD_slowka.csv", int64(len(c)), c.sha(), c.open)
	if err != nil || dials.Load() != 1 {
		t.Fatalf("after %s, %d connections: %v; want the moving upload finished on one", time.Since(begin).Round(time.Millisecond), dials.Load(), err)
	}
}
