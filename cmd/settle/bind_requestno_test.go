package main

import (
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/infiniapay"
)

// TestBindRequestNoIsTheSameInEveryZone: sellers bind's requestNo was
// dated by the machine's clock in its own zone, so the same bind made
// from two machines (an operator in Shanghai, a pod in UTC) near midnight
// made two requests, not one replayed. Dated in UTC, it is the same for
// the same instant wherever the machine is.
func TestBindRequestNoIsTheSameInEveryZone(t *testing.T) {
	req := infiniapay.BindRequest{SellerID: "INF00000002", SellerCertNo: "S00002", SellerName: "Seller 2", StoreName: "Seller 2",
		StoreURL: "https://shop.example/s2", EntityType: "Corporate", Country: "CHN", Currency: "USD"}
	// 2026-11-23 12:30 UTC: already the 24th at Kiritimati (+14), still the
	// 23rd at Pago Pago (-11); 23:30 UTC is the 24th in Shanghai.
	for _, at := range []time.Time{time.Date(2026, 11, 23, 12, 30, 0, 0, time.UTC), time.Date(2026, 11, 23, 23, 30, 0, 0, time.UTC)} {
		utc := bindRequestNo(at, "S00002", req)
		if !strings.HasPrefix(utc, "ABR-20261123-") {
			t.Errorf("bind at %s: requestNo %s, want it dated 20261123, the day in UTC", at, utc)
		}
		for _, zone := range []string{"Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Shanghai"} {
			loc, err := time.LoadLocation(zone)
			if err != nil {
				t.Fatal(err)
			}
			if got := bindRequestNo(at.In(loc), "S00002", req); got != utc {
				t.Errorf("bind at %s on a machine in %s: requestNo %s, in UTC %s; want the same", at, zone, got, utc)
			}
		}
	}
}
