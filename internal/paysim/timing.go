package paysim

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Timing is the simulator's timing model: how long the simulated providers
// take and how fast they let us go. The zero Timing answers at once,
// limited only by WeChat Pay's published QPS (as the demo and the tests
// want); InternetTiming is what a production day meets.
type Timing struct {
	// Latency is waited before every API answer (all three providers).
	Latency time.Duration
	// Processing delays in wall time, from acceptance to a final status:
	// an Infinia trade file's upload status, an Infinia revenue share, a
	// WeChat Pay distribution or unfreeze. Pay Protocol's payments are
	// final when created (none).
	UploadDelay       time.Duration
	RevenueShareDelay time.Duration
	DistributionDelay time.Duration
	// Rate limits in requests a second (burst: one second's worth); beyond
	// them the provider answers HTTP 429. Infinia's and Pay Protocol's are
	// configurable (0: unlimited); WeChat Pay's are published, 300 per
	// service provider and 30 per sub-merchant (0: those; negative:
	// unlimited).
	InfiniaQPS           float64
	PayProtocolQPS       float64
	WeChatQPS            int
	WeChatSubMerchantQPS int
	Now                  func() time.Time // the clock of the delays and limits; default time.Now
}

// InternetTiming is the timing model of paysim --timing internet: 80 ms a
// request, upload status 20 s, revenue share 30 s, distribution 10 s;
// Infinia and Pay Protocol at 50 requests a second, WeChat Pay at its
// published 300 and 30.
var InternetTiming = Timing{Latency: 80 * time.Millisecond, UploadDelay: 20 * time.Second, RevenueShareDelay: 30 * time.Second,
	DistributionDelay: 10 * time.Second, InfiniaQPS: 50, PayProtocolQPS: 50, WeChatQPS: 300, WeChatSubMerchantQPS: 30}

// On reports whether the model makes the providers take time.
func (t Timing) On() bool {
	return t.Latency > 0 || t.UploadDelay > 0 || t.RevenueShareDelay > 0 || t.DistributionDelay > 0
}

// TimingPreset returns the named timing model: "none" (instant answers)
// or "internet" (InternetTiming).
func TimingPreset(name string) (Timing, error) {
	switch strings.ToLower(name) {
	case "", "none", "instant":
		return Timing{}, nil
	case "internet":
		return InternetTiming, nil
	}
	return Timing{}, fmt.Errorf("unknown timing preset %q: want none or internet", name)
}

// ProviderRequests is what one simulated provider was asked, for
// GET /paysim/state and a benchmark: requests by endpoint (refused and
// faulted ones included), the HTTP 429 answers it gave, and its limits.
type ProviderRequests struct {
	Total               int                `json:"total"`
	ByEndpoint          map[string]int     `json:"by_endpoint"`
	TooMany             int                `json:"too_many_429"`
	LimitQPS            float64            `json:"limit_qps"`                        // 0: unlimited
	SubMerchantLimitQPS float64            `json:"sub_merchant_limit_qps,omitempty"` // WeChat Pay
	LatencySeconds      float64            `json:"latency_seconds"`
	ProcessingSeconds   map[string]float64 `json:"processing_seconds,omitempty"` // by what is processed
}

// Requests are the request counters of the simulated providers, by
// provider: "infinia", "wechat", "payprotocol"; and "sftp" counts the
// trade files received.
type Requests map[string]ProviderRequests

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// Requests returns the simulator's request counters now.
func (s *Sim) Requests() Requests {
	t := s.timing
	wxQPS, wxSub := float64(t.WeChatQPS), float64(t.WeChatSubMerchantQPS)
	if t.WeChatQPS == 0 {
		wxQPS = 300
	}
	if t.WeChatSubMerchantQPS == 0 {
		wxSub = 30
	}
	wxQPS, wxSub = max(wxQPS, 0), max(wxSub, 0)
	inf, wx, pp := s.Infinia.CallCounts(), s.WeChat.CallCounts(), s.PayProtocol.CallCounts()
	r := Requests{
		"infinia": {Total: total(inf), ByEndpoint: inf, TooMany: s.Infinia.Count429(), LimitQPS: t.InfiniaQPS,
			LatencySeconds: t.Latency.Seconds(), ProcessingSeconds: map[string]float64{"upload": t.UploadDelay.Seconds(),
				"revenue_share": t.RevenueShareDelay.Seconds()}},
		"wechat": {Total: total(wx), ByEndpoint: wx, TooMany: s.WeChat.Count429(), LimitQPS: wxQPS, SubMerchantLimitQPS: wxSub,
			LatencySeconds: t.Latency.Seconds(), ProcessingSeconds: map[string]float64{"distribution": t.DistributionDelay.Seconds()}},
		"payprotocol": {Total: total(pp), ByEndpoint: pp, TooMany: s.PayProtocol.Count429(), LimitQPS: t.PayProtocolQPS,
			LatencySeconds: t.Latency.Seconds()},
	}
	files := s.files.Load()
	r["sftp"] = ProviderRequests{Total: int(files), ByEndpoint: map[string]int{"files": int(files)}}
	return r
}

// serveRequests answers GET /paysim/requests with Requests as JSON: the
// counters alone, cheap to poll during a large day (the state lists every
// transaction).
func (s *Sim) serveRequests(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.Requests())
}
