package wechatpay

import (
	"errors"
	"net/http"
	"testing"
)

// TestARefusalAfterAnAttemptThatMayHaveBeenAppliedIsNotARefusal: a
// distribution answered 500 SYSTEM_ERROR (applied, perhaps) is sent again
// under its out_order_no, as published; WeChat Pay refusing the resend
// (signed 400 NOT_ENOUGH: it distributed the funds already) while its
// query does not know the order yet made SendOrder record the
// distribution failed, and the next run send another under a new key.
// The call marks such a refusal ErrUnknownOutcome (do): it is no
// refusal, and the effect stays unknown, asked about by its key.
func TestARefusalAfterAnAttemptThatMayHaveBeenAppliedIsNotARefusal(t *testing.T) {
	refusal := func(err error) *Error {
		return &Error{kind: failCode, signed: true, HTTPStatus: http.StatusBadRequest, Code: "NOT_ENOUGH", Err: err}
	}
	if !refusal(errors.New("not enough")).Refused() {
		t.Fatal("a signed 400 to a first attempt is not a refusal")
	}
	if refusal(unknown(errors.New("not enough"))).Refused() {
		t.Fatal("a signed 400 after an attempt that may have been applied is taken as a refusal")
	}
}
