package infiniapay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// failedOne answers SUCCESS for every file but one, which is FAILED with
// an error-file link; ErrorRows is the real client's (stageAPI).
type failedOne struct {
	stageAPI
	failed, url string
}

func (a failedOne) UploadStatus(_ context.Context, f pipeline.TradeFile) (string, string, error) {
	if f.RequestNo == a.failed {
		return StatusFailed, a.url, nil
	}
	return StatusSuccess, "", nil
}

// TestAnUnreadableErrorFileHoldsItsFileAlone: a refused file whose error
// file cannot be read - not well-formed CSV (a trailer with another number
// of fields), a line number that is not one, no link, or the link
// answering HTTP 403 (an expired signed URL) - is held whole with the
// reason, like one in another layout, and the other files are accepted.
// The error stopped the upload stage (exit 1) before distribute, for every
// seller of the date, on every re-run (found by a review). A link whose
// server does not answer now (503) leaves the file open, waited on as one
// still processing (exit 1: a retry may read it; it ended 4, for a person).
func TestAnUnreadableErrorFileHoldsItsFileAlone(t *testing.T) {
	t.Parallel()
	cases := map[string]func(w http.ResponseWriter){
		"ragged trailer": func(w http.ResponseWriter) {
			fmt.Fprint(w, "line,order_no,reason\n2,O1,product type not allowed\n1 error(s)\n")
		},
		"line not a number": func(w http.ResponseWriter) {
			fmt.Fprint(w, "line,order_no,reason\n-,O1,product type not allowed\n")
		},
		"FAILED without a link": func(w http.ResponseWriter) {},
		"expired link (403)": func(w http.ResponseWriter) {
			http.Error(w, "AccessDenied: Request has expired", http.StatusForbidden)
		},
		"not now (503)": func(w http.ResponseWriter) {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		},
	}
	for name, serve := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serve(w) }))
			defer srv.Close()
			client := &Client{cfg: Config{HTTP: srv.Client(), Layout: DefaultLayout(), Currencies: DefaultCurrencies(),
				Timeout: time.Second, RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxRetries: 1}}
			store := &statusStore{}
			for i := range 5 {
				store.files = append(store.files, pipeline.TradeFile{ID: int64(i + 1), RequestNo: fmt.Sprintf("R%d", i), Name: fmt.Sprintf("F%d.csv", i), Status: StatusReceived})
			}
			link := srv.URL + "/error-files/R0.csv"
			if name == "FAILED without a link" {
				link = ""
			}
			api := failedOne{stageAPI: stageAPI{client}, failed: "R0", url: link}
			wait := time.Minute
			if name == "not now (503)" {
				wait = 50 * time.Millisecond // asked again in waves until the wait is over
			}
			c := &StageConfig{Store: store, API: api, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 1}), Wait: wait, Poll: 10 * time.Millisecond, Now: time.Now}
			problems, unusable := &pipeline.Problems{}, &unusableAnswers{}
			accepted, refused, err := awaitUploads(context.Background(), c, &pipeline.Run{ID: 1}, unusable, problems)
			if name == "not now (503)" {
				// Waited on as still processing (exit 1: a retry may read
				// it), not held for a person (exit 4), and open.
				if !errors.Is(err, pipeline.ErrStillProcessing) || !strings.Contains(err.Error(), "F0.csv (refused, and its error file could not be read now") ||
					unusable.has("F0.csv") || problems.Count() != 0 || store.files[0].Status != StatusReceived {
					t.Fatalf("err %v, F0 %s (held: %v, %d problems), want it still processing and open", err, store.files[0].Status, unusable.has("F0.csv"), problems.Count())
				}
				if _, n, _, _ := store.TradeFileCounts(context.Background(), 1); n != 4 {
					t.Fatalf("%d others accepted, want 4", n)
				}
				return
			}
			if err != nil || accepted != 4 {
				t.Fatalf("accepted %d, refused %d, err: %v (kind %v); want the 4 others accepted", accepted, refused, err, pipeline.KindOf(err))
			}
			if refused != 1 || problems.Count() != 1 || store.files[0].Status != StatusFailed || !strings.Contains(store.files[0].Reason, "error file could not be read") {
				t.Fatalf("refused %d (%d problems), F0 %s %q; want it held with the reason", refused, problems.Count(), store.files[0].Status, store.files[0].Reason)
			}
		})
	}
}
