package infiniapay_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
)

// Infinia's published examples (doc.infiniax.com), verbatim.
const (
	// Account Binding request body (api-346463507).
	publishedBindRequest = `{"requestNo":"ABR-20250903-0001","sellerId":"SELLER-123456","sellerCertNo":"91310108MA1KXXXXXX","sellerName":"Acme Trading Ltd.","storeName":"Acme Official Store","storeUrl":"https://store.example.com/acme","entityType":"Corporate","country":"CHN","currency":"CNH","note":"First-time binding","backlinkUrl":"https://merchant.example.com/seller/SELLER-123456"}`
	// Trade Details Upload Status Query answer (schema-199464716).
	publishedUploadStatus = `{ "status": "FAILED", "requestNo": "TDU-20250903-0001", "sellerId": "SELLER-123456", "currency": "CNH", "errorFileUrl": "https://.../errors/xxxx" }`
)

// publishedPeer answers every call with data, sealed as Infinia does, and
// hands the decrypted request to seen.
func publishedPeer(t *testing.T, data string, seen func(map[string]string)) *infiniapay.Client {
	t.Helper()
	k := keys(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, plain, err := infiniapay.Open(body, k.InfiniaPrivate, k.PlatformPublic)
		if err != nil {
			t.Errorf("request: %v", err)
			return
		}
		var req map[string]string
		if err := json.Unmarshal(plain, &req); err != nil {
			t.Errorf("request data is not an object of strings: %s", plain)
		}
		seen(req)
		enc, _ := infiniapay.Encrypt(k.PlatformPublic, []byte(data), 117)
		sig, _ := infiniapay.Sign(k.InfiniaPrivate, enc)
		json.NewEncoder(w).Encode(infiniapay.ResponseEnvelope{AppID: "APP", Code: "SUC-200", Message: "success", ResponseData: enc, Signature: sig})
	}))
	t.Cleanup(srv.Close)
	c, err := infiniapay.New(infiniapay.Config{BaseURL: srv.URL, AppID: "APP", PlatformID: "PLAT", OurKey: k.PlatformPrivate, InfiniaKey: k.InfiniaPublic, HTTP: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func keysOf(m map[string]string) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// Our binding request has the published example's fields, the yuan as CNH.
func TestPublishedBindRequest(t *testing.T) {
	var want map[string]string
	if err := json.Unmarshal([]byte(publishedBindRequest), &want); err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	c := publishedPeer(t, `{"redirectUrl":"https://uat.infiniax.com/bind/x"}`, func(m map[string]string) { got = m })
	_, err := c.BindAccount(context.Background(), infiniapay.BindRequest{RequestNo: want["requestNo"], SellerID: want["sellerId"],
		SellerCertNo: want["sellerCertNo"], SellerName: want["sellerName"], StoreName: want["storeName"], StoreURL: want["storeUrl"],
		EntityType: want["entityType"], Country: want["country"], Currency: "CNY", Note: want["note"], BacklinkURL: want["backlinkUrl"]})
	if err != nil {
		t.Fatal(err)
	}
	if keysOf(got) != keysOf(want) {
		t.Fatalf("fields %s, published %s", keysOf(got), keysOf(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, published %q", k, got[k], v)
		}
	}
}

// The published upload status answer is read, CNH back as CNY.
func TestPublishedUploadStatus(t *testing.T) {
	c := publishedPeer(t, publishedUploadStatus, func(map[string]string) {})
	u, err := c.UploadStatus(context.Background(), "TDU-20250903-0001")
	if err != nil {
		t.Fatal(err)
	}
	want := infiniapay.Upload{RequestNo: "TDU-20250903-0001", SellerID: "SELLER-123456", Currency: "CNY", Status: "FAILED", ErrorFileURL: "https://.../errors/xxxx"}
	if u != want {
		t.Fatalf("%+v, want %+v", u, want)
	}
}

// TestAnUploadStatusAboutAnotherFileIsNotOurs: the published answer
// echoes the file's seller and currency; one about another seller or
// currency made the file's items uploaded, to be paid (found by a review):
// it is an answer that cannot be used, and the file stays open.
func TestAnUploadStatusAboutAnotherFileIsNotOurs(t *testing.T) {
	d := pipeline.Date{Year: 2025, Month: 9, Day: 3}
	for _, tc := range []struct {
		answer string
		ok     bool
	}{
		{`{"status":"SUCCESS","requestNo":"TDU-20250903-0001","sellerId":"SELLER-123456","currency":"CNH","errorFileUrl":""}`, true},
		{`{"status":"SUCCESS","requestNo":"TDU-20250903-0001","errorFileUrl":""}`, true},
		{`{"status":"SUCCESS","requestNo":"TDU-20250903-0001","sellerId":"SELLER-999999","currency":"CNH","errorFileUrl":""}`, false},
		{`{"status":"SUCCESS","requestNo":"TDU-20250903-0001","sellerId":"SELLER-123456","currency":"USD","errorFileUrl":""}`, false},
	} {
		c := publishedPeer(t, tc.answer, func(map[string]string) {})
		name, err := c.TradeFileName("SELLER-123456", "CNY", d, "TDU-20250903-0001")
		if err != nil {
			t.Fatal(err)
		}
		f := pipeline.TradeFile{RequestNo: "TDU-20250903-0001", Name: name, Currency: "CNY", Date: d}
		status, _, err := infiniapay.StageAPIOf(c).UploadStatus(context.Background(), f)
		if tc.ok != (err == nil) || !tc.ok && (!errors.Is(err, infiniapay.ErrAnswer) || !pipeline.SubjectOnly(err)) {
			t.Errorf("%s: status %q, %v; want ok %v", tc.answer, status, err, tc.ok)
		}
	}
}
