package infiniapay_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
)

func TestPreflight(t *testing.T) {
	ctx := context.Background()
	good := newRig(t, infiniapaytest.Options{}, nil, nil)
	if err := good.client.Preflight(ctx); err != nil {
		t.Fatalf("good credentials: %v", err)
	}
	other, err := infiniapaytest.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*infiniapay.Config){
		"our key unknown to Infinia":  func(c *infiniapay.Config) { c.OurKey = other.PlatformPrivate },
		"another appId":               func(c *infiniapay.Config) { c.AppID = "APP-OTHER" },
		"Infinia's key is not theirs": func(c *infiniapay.Config) { c.InfiniaKey = other.InfiniaPublic },
	} {
		r := newRig(t, infiniapaytest.Options{}, nil, mod)
		err := r.client.Preflight(ctx)
		if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "Infinia Pay") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: kind %v: %v", name, pipeline.KindOf(err), err)
		}
		if n := r.fake.Calls("balance/query"); n != 1 {
			t.Errorf("%s: %d balance queries: a refusal was retried", name, n)
		}
		noSecrets(t, err)
	}
	// Infinia unavailable is not a configuration error.
	down := newRig(t, infiniapaytest.Options{Faults: fault.New(1, fault.Rule{Endpoint: "*", Kind: fault.Unavailable, Prob: 1})},
		nil, func(c *infiniapay.Config) { c.MaxRetries = 1 })
	if err := down.client.Preflight(ctx); err == nil || pipeline.KindOf(err) == pipeline.KindUsage {
		t.Fatalf("Infinia unavailable: kind %v: %v", pipeline.KindOf(err), err)
	}
}

// Outside the preflight too, a refused signature is a configuration error
// (exit 2), never retried; a refusal about the request is not.
func TestRefusedCredentialsAreUsage(t *testing.T) {
	other, err := infiniapaytest.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, infiniapaytest.Options{}, nil, func(c *infiniapay.Config) { c.OurKey = other.PlatformPrivate })
	_, err = r.client.UploadStatus(context.Background(), "TDU-1")
	if pipeline.KindOf(err) != pipeline.KindUsage || !errors.Is(err, infiniapay.ErrCredentials) || r.fake.Calls("trade-details/query") != 1 {
		t.Fatalf("kind %v after %d calls: %v", pipeline.KindOf(err), r.fake.Calls("trade-details/query"), err)
	}
	// A requestNo used again with other parameters: refused by Infinia
	// (the client checks what it can before sending, BindRequest.Check).
	ok := newRig(t, infiniapaytest.Options{}, nil, nil)
	bind := infiniapay.BindRequest{RequestNo: "ABR-1", SellerID: "S1", SellerCertNo: "X",
		SellerName: "S", StoreName: "S", StoreURL: "https://s.example", EntityType: "Individual", Country: "DEU", Currency: "EUR"}
	if _, err := ok.client.BindAccount(context.Background(), bind); err != nil {
		t.Fatal(err)
	}
	bind.SellerName = "Another"
	_, err = ok.client.BindAccount(context.Background(), bind)
	var ie *infiniapay.Error
	if pipeline.KindOf(err) == pipeline.KindUsage || errors.Is(err, infiniapay.ErrCredentials) || !errors.As(err, &ie) || ie.Code != infiniapay.CodeInvalidParameter || !ie.Definite() {
		t.Fatalf("a refusal about the request taken for refused credentials: %v", err)
	}
}
