// Package heaptest measures the most live heap a piece of code needs, for
// the benchmarks that show a stage or matcher holds a page of the day, not
// the day.
package heaptest

import (
	"runtime"
	"runtime/metrics"
	"time"
)

// PeakLive runs fn and returns the most live heap (as the GC measures it,
// sampled every millisecond) above what was live before, in MiB.
func PeakLive(fn func() error) (float64, error) {
	runtime.GC()
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	base := live[0].Value.Uint64()
	done := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		var top uint64
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		for {
			metrics.Read(sample)
			top = max(top, sample[0].Value.Uint64())
			select {
			case <-done:
				peak <- top
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	err := fn()
	close(done)
	return float64(max(<-peak, base)-base) / (1 << 20), err
}
