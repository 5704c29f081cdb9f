package wechatpay

import "testing"

// A line of the published bill has no receiver type: the platform's line is
// found by its account, so that the matcher sees the commission the bill
// shows (before, no line of a real bill was the platform's).
func TestABillLineWithoutReceiverTypeIsThePlatformsByAccount(t *testing.T) {
	a := NewAdapter(nil, NewReceiver{Type: TypeMerchantID, Account: "1900009999", Name: "Platform", RelationType: RelationSupplier})
	for _, tc := range []struct {
		typ, account string
		want         bool
	}{
		{"", "1900009999", true},
		{TypeMerchantID, "1900009999", true},
		{TypePersonalOpenID, "1900009999", false},
		{"", "1900000109", false},
	} {
		if got := a.platform(tc.typ, tc.account); got != tc.want {
			t.Errorf("platform(%q, %q) = %v, want %v", tc.typ, tc.account, got, tc.want)
		}
	}
}
