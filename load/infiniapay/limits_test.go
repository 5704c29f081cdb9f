package infiniapay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
)

// TestARequestLongerThanInfiniaPublishesIsNotSent: Infinia publishes
// requestData as at most 2048 characters (six 256-byte blocks of 64-byte
// chunks: 384 bytes of JSON; its own binding example is 359). A binding
// request with a longer store URL was sent, for Infinia to refuse; it is
// refused here (ErrTooLarge) with nothing sent, and the fake refuses such
// a requestData as Infinia would (SYS-007).
func TestARequestLongerThanInfiniaPublishesIsNotSent(t *testing.T) {
	var calls atomic.Int32
	r := newRig(t, infiniapaytest.Options{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			calls.Add(1)
			h.ServeHTTP(w, req)
		})
	}, nil)
	bind := infiniapay.BindRequest{RequestNo: "ABR-20250903-0001", SellerID: "SELLER-123456", SellerCertNo: "91310108MA1KXXXXXX",
		SellerName: "Acme Trading Ltd.", StoreName: "Acme Official Store", StoreURL: "https://store.example.com/acme/" + strings.Repeat("x", 40),
		EntityType: "Corporate", Country: "CHN", Currency: "CNY", Note: "First-time binding",
		BacklinkURL: "https://merchant.example.com/seller/SELLER-123456"}
	_, err := r.client.BindAccount(context.Background(), bind)
	if !errors.Is(err, infiniapay.ErrTooLarge) || calls.Load() != 0 {
		t.Fatalf("err %v after %d calls: want ErrTooLarge, nothing sent", err, calls.Load())
	}

	// The fake, sent such a request, refuses it.
	if env := bindRaw(t, r, bind); env.Code != infiniapay.CodeTooLarge {
		t.Fatalf("the fake answered %+v: want %s", env, infiniapay.CodeTooLarge)
	}
}

// bindRaw sends the fake the binding request body, sealed as the client
// would but unchecked, and returns its answer's envelope.
func bindRaw(t *testing.T, r *rig, body any) infiniapay.ResponseEnvelope {
	t.Helper()
	k := keys(t)
	sealed, err := infiniapay.Seal("APP-TEST", body, k.InfiniaPublic, k.PlatformPrivate, infiniapay.DefaultChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := r.srv.Client().Post(r.srv.URL+"/api/v1/account-binding/request", "application/json", bytes.NewReader(sealed))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env infiniapay.ResponseEnvelope
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	return env
}

// TestARevenueShareWhoseNoteDoesNotFitGoesOutWithoutIt: the sender's
// note is the payout's subject, which names the platform's seller id,
// of any length. With a long one the request was longer than Infinia
// publishes (MaxRequestData): refused, the seller was never paid. The
// note is optional: the payout goes out without it.
func TestARevenueShareWhoseNoteDoesNotFitGoesOutWithoutIt(t *testing.T) {
	r := newRig(t, infiniapaytest.Options{}, nil, nil)
	r.fake.SetBinding("S1", infiniapay.StatusActive)
	r.fake.SetBalance("CNY", 100_000)
	r.fake.SetAvailable("S1", "CNY", 100_000)
	note := "RS/20260101/" + strings.Repeat("seller", 60) + "/CNY"
	res, err := r.client.RevenueShare(context.Background(), infiniapay.RevenueShareRequest{RequestNo: "RS-20260101-ABCDEF012345-1",
		SellerID: "S1", Currency: "CNY", Amount: 12_345, Note: note})
	if err != nil || r.fake.Paid("S1", "CNY") != 12_345 {
		t.Fatalf("%+v, err %v, %d paid: want 12345 paid", res, err, r.fake.Paid("S1", "CNY"))
	}
}

// TestABindingRequestOutsideInfiniasEnumerationsIsNotSent: Infinia
// publishes entityType as Corporate or Individual and country as ISO
// 3166-1 alpha-3. A seller whose platform data says "CN" or "corporate"
// was sent as it was and refused (SYS-002, naming no field) every time it
// was bound. It is refused here naming the field, nothing sent; the fake
// refuses it as Infinia would, and takes the published forms.
func TestABindingRequestOutsideInfiniasEnumerationsIsNotSent(t *testing.T) {
	r := newRig(t, infiniapaytest.Options{}, nil, nil)
	good := infiniapay.BindRequest{RequestNo: "ABR-20250903-0001", SellerID: "SELLER-123456", SellerCertNo: "91310108MA1KXXXXXX",
		SellerName: "Acme Trading Ltd.", StoreName: "Acme Official Store", StoreURL: "https://store.example.com/acme",
		EntityType: "Corporate", Country: "CHN", Currency: "CNY"}
	for field, bad := range map[string]func(*infiniapay.BindRequest){
		"country":    func(b *infiniapay.BindRequest) { b.Country = "CN" },
		"entityType": func(b *infiniapay.BindRequest) { b.EntityType = "corporate" },
	} {
		b := good
		bad(&b)
		_, err := r.client.BindAccount(context.Background(), b)
		if err == nil || !strings.Contains(err.Error(), field) || r.fake.Calls(infiniapay.APIBindAccount) != 0 {
			t.Fatalf("%s: err %v after %d requests: want it refused naming %s, nothing sent", field, err, r.fake.Calls(infiniapay.APIBindAccount), field)
		}
	}
	if _, err := r.client.BindAccount(context.Background(), good); err != nil {
		t.Fatalf("the published forms: %v", err)
	}

	// The fake, sent such a request, refuses it.
	wire := map[string]string{"requestNo": "ABR-20250903-0002", "sellerId": good.SellerID, "sellerCertNo": good.SellerCertNo,
		"sellerName": "Acme", "storeName": "Acme", "storeUrl": good.StoreURL, "entityType": good.EntityType, "country": "CN", "currency": "CNH"}
	if env := bindRaw(t, r, wire); env.Code != infiniapay.CodeInvalidParameter || !strings.Contains(env.Message, "country") {
		t.Fatalf("the fake answered %s %q: want %s about the country", env.Code, env.Message, infiniapay.CodeInvalidParameter)
	}
}
