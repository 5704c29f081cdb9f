package wechatpay_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
	"github.com/settlekit/settle/pipeline"
)

// TestPlatformKeyRotation: WeChat Pay rotates its platform certificate
// (or public key) and asks merchants to accept answers signed with the
// old and the new one while it changes. With both keys configured, answers
// signed with the new one verify, while requests still name the old one.
// With the old key alone, the answer is refused as a configuration error
// that names the serial it was signed under and what to do (add the new
// key with --wechat-platform-verify-file): before, it said "does not
// verify with our platform key (check the platform public key)", which
// sent the operator to change a key that was right.
func TestPlatformKeyRotation(t *testing.T) {
	const newSerial = "PUB_KEY_ID_0114232134912410000000000001"
	newKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	resign := rewrite(func(h http.Header, body []byte) []byte {
		if h.Get(wechatpay.HeaderSignature) == "" {
			return body
		}
		sig, err := wechatpay.Sign(newKey, wechatpay.ResponseMessage(h.Get(wechatpay.HeaderTimestamp), h.Get(wechatpay.HeaderNonce), body))
		if err != nil {
			t.Error(err)
		}
		h.Set(wechatpay.HeaderSerial, newSerial)
		h.Set(wechatpay.HeaderSignature, sig)
		return body
	})
	ctx := context.Background()

	t.Run("both keys", func(t *testing.T) {
		r := newRig(t, wechatpaytest.Options{}, resign, func(c *wechatpay.Config) {
			c.PlatformKeys = maps.Clone(c.PlatformKeys)
			c.PlatformKeys[newSerial] = &newKey.PublicKey
			c.EncryptSerial = platformSerial
		})
		if err := r.client.Preflight(ctx); err != nil {
			t.Fatalf("preflight: %v", err)
		}
		if _, err := r.client.QueryOrder(ctx, subMchID, "4200000000000000000000000000", "ORDER1"); !errors.Is(err, wechatpay.ErrNotFound) {
			t.Fatalf("query: %v, want WeChat Pay's signed not found", err)
		}
	})

	t.Run("old key alone", func(t *testing.T) {
		r := newRig(t, wechatpaytest.Options{}, resign, nil)
		err := r.client.Preflight(ctx)
		if pipeline.KindOf(err) != pipeline.KindUsage || !errors.Is(err, wechatpay.ErrSignature) ||
			!strings.Contains(err.Error(), newSerial) || !strings.Contains(err.Error(), "--wechat-platform-verify-file") ||
			!strings.Contains(err.Error(), "signed with a platform key we do not hold") {
			t.Fatalf("%v", err)
		}
		noSecrets(t, err)
	})
}
