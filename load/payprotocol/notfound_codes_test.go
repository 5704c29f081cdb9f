package payprotocol_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// TestOnlyTheNotFoundCodesSayAnOrderIsUnknown: Pay Protocol's refusal of a
// question in {code, msg} means "no such order" only for the codes
// configured so (Config.NotFoundCodes, default 404). Any other code (a
// parameter it refuses, an error of its own) says nothing of the order:
// read as "not found", a paid order would be rejected for good as a
// payment Pay Protocol does not know, and its seller never paid.
func TestOnlyTheNotFoundCodesSayAnOrderIsUnknown(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("outTradeNo") {
		case "GONE":
			w.Write([]byte(`{"code":404,"msg":"order not exist","data":null}`))
		default:
			w.Write([]byte(`{"code":400,"msg":"invalid parameter","data":null}`))
		}
	}))
	t.Cleanup(srv.Close)
	c, err := payprotocol.New(payprotocol.Config{BaseURL: srv.URL + "/api/mer", APIKey: testKey, APISecret: testSecret,
		HTTP: payprotocol.NewHTTPClient(5 * time.Second), RetryBase: time.Millisecond, RetryMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := (payprotocol.Adapter{Client: c}).Payment(ctx, "GONE"); !pipeline.IsNotFound(err) {
		t.Errorf("code 404: %v, want not found", err)
	}
	if _, err := (payprotocol.Adapter{Client: c}).Payment(ctx, "ODD"); err == nil || pipeline.IsNotFound(err) {
		t.Errorf("code 400: %v, want an error that is not \"not found\"", err)
	}
}
