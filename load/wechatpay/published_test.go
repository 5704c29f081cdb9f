package wechatpay_test

// One test per answer WeChat Pay publishes, in its published shape (field
// names and formats from the API pages listed in PROVIDERS.md), signed with
// WeChat's official SDK signer: the client must read each as it is.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// Fund settlement details: data[] of batch_id, settlement_date,
// trade_start_date, trade_end_date, amount{settled, unsettle, currency,
// pay, refund, net, fee}, wallet_region; dates yyyyMMdd.
const publishedSettlements = `{"data":[{"batch_id":"1000000000000000000001","settlement_date":"20250905",` +
	`"trade_start_date":"20250903","trade_end_date":"20250903","amount":{"settled":11500,"unsettle":0,"currency":"CNY",` +
	`"pay":12000,"refund":300,"net":11700,"fee":200},"wallet_region":"CN"}]}`

func TestPublishedSettlementAnswer(t *testing.T) {
	s := &sdkSigned{body: publishedSettlements}
	c := sdkRig(t, s)
	q := wechatpay.SettlementQuery{SubMchID: subMchID, State: wechatpay.SettleStateSettled, Start: pipelineDate(2025, 9, 3), End: pipelineDate(2025, 9, 10)}
	p, err := c.SettlementPage(context.Background(), q, 0, 10)
	want := wechatpay.Settlement{BatchID: "1000000000000000000001", State: wechatpay.SettleStateSettled, SettlementDate: pipelineDate(2025, 9, 5),
		TradeStart: pipelineDate(2025, 9, 3), TradeEnd: pipelineDate(2025, 9, 3), WalletRegion: "CN",
		Amount: wechatpay.SettlementAmount{Currency: "CNY", Settled: 11500, Pay: 12000, Refund: 300, Net: 11700, Fee: 200}}
	if err != nil || len(p.Items) != 1 || p.Items[0] != want {
		t.Fatalf("page = %+v, %v\nwant %+v", p, err, want)
	}
	// The query's dates are yyyyMMdd.
	if r := s.requests(); len(r) != 1 || r[0].uri != "/v3/global/settle/settlements?limit=10&offset=0&settle_end_date=20250910&settle_start_date=20250903&settle_state=SETTLED&sub_mchid="+subMchID {
		t.Fatalf("request %+v", r)
	}
	// UNSETTLE: the dates are published as "invalid" for it; none is sent.
	q.State = wechatpay.SettleStateUnsettled
	if _, err := c.SettlementPage(context.Background(), q, 0, 10); err != nil {
		t.Fatal(err)
	}
	if r := s.requests(); len(r) != 2 || r[1].uri != "/v3/global/settle/settlements?limit=10&offset=0&settle_state=UNSETTLE&sub_mchid="+subMchID {
		t.Fatalf("request %+v", r)
	}
}

// Bill download address: download_url alone, on a WeChat Pay host.
func TestPublishedBillURLAnswer(t *testing.T) {
	c := sdkRig(t, &sdkSigned{body: `{"download_url":"https://api.mch.weixin.qq.com/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA_Cv_isgaUtBzp4QtiozLO"}`})
	b, err := c.BillDownloadURL(context.Background(), subMchID, pipelineDate(2025, 9, 3))
	if err != nil || b.URL != "https://api.mch.weixin.qq.com/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA_Cv_isgaUtBzp4QtiozLO" {
		t.Fatalf("BillDownloadURL = %+v, %v", b, err)
	}
}

// Distribution query: sub_mchid, transaction_id, out_order_no, order_id,
// state, receivers[] of amount, result, fail_reason, create_time,
// finish_time, detail_id, settlement_currency, settlement_amount, rate.
func TestPublishedOrderAnswer(t *testing.T) {
	c := sdkRig(t, &sdkSigned{body: `{"sub_mchid":"1900000109","transaction_id":"4208450740201411110007820472",` +
		`"out_order_no":"P20150806125346","order_id":"3008450740201411110007820472","state":"FINISHED","receivers":[{"amount":100,` +
		`"description":"分给商户1900000110","type":"MERCHANT_ID","account":"1900000110","result":"CLOSED","fail_reason":"ACCOUNT_ABNORMAL",` +
		`"detail_id":"36011111111111111111111","create_time":"2015-05-20T13:29:35+08:00","finish_time":"2015-05-20T13:29:35+08:00",` +
		`"settlement_currency":"USD","settlement_amount":15,"rate":"0.15"}]}`})
	o, err := c.QueryOrder(context.Background(), "1900000109", "4208450740201411110007820472", "P20150806125346")
	if err != nil || o.State != wechatpay.StateFinished || o.OrderID != "3008450740201411110007820472" || len(o.Receivers) != 1 {
		t.Fatalf("QueryOrder = %+v, %v", o, err)
	}
	l := o.Receivers[0]
	at := time.Date(2015, 5, 20, 13, 29, 35, 0, wechatpay.Beijing)
	if l.Result != wechatpay.ResultClosed || l.FailReason != "ACCOUNT_ABNORMAL" || l.Amount != 100 || !l.CreateTime.Equal(at) ||
		l.SettlementCurrency != "USD" || l.SettlementAmount != 15 || l.Rate != "0.15" || l.DetailID != "36011111111111111111111" {
		t.Fatalf("line = %+v", l)
	}
}

// Remaining amount: unsplit_amount and currency.
func TestPublishedAmountsAnswer(t *testing.T) {
	c := sdkRig(t, &sdkSigned{body: unsplitAnswer})
	u, err := c.RemainingAmount(context.Background(), subMchID, "4208450740201411110007820472")
	if err != nil || u != (wechatpay.Unsplit{TransactionID: "4208450740201411110007820472", Currency: pipeline.Currency("CNY"), Amount: 7000}) {
		t.Fatalf("RemainingAmount = %+v, %v", u, err)
	}
}

// Delete receiver: 204 No Content, signed over an empty body.
func TestPublishedDeleteReceiverAnswer(t *testing.T) {
	s := &sdkSigned{status: http.StatusNoContent}
	c := sdkRig(t, s)
	if err := c.DeleteReceiver(context.Background(), wechatpay.ReceiverRef{SubMchID: subMchID, Type: wechatpay.TypeMerchantID, Account: mchID}); err != nil {
		t.Fatal(err)
	}
	if r := s.requests(); len(r) != 1 || r[0].method != http.MethodDelete || len(r[0].body) == 0 {
		t.Fatalf("requests %+v", r)
	}
}

// Receiver result query: appid for a PERSONAL_OPENID receiver, sub_appid
// for a PERSONAL_SUB_OPENID one (an OpenID belongs to its app); without it
// nothing is sent.
func TestReceiverResultSendsTheAppID(t *testing.T) {
	ctx := context.Background()
	s := &sdkSigned{body: `{"sub_mchid":"1900000109","type":"PERSONAL_OPENID","account":"of8YZ6LPmjDmYAqdobIvwTdQQjR8","relation_type":"SUPPLIER","state":"EFFECTIVE"}`}
	c := sdkRig(t, s)
	st, err := c.ReceiverResult(ctx, wechatpay.ReceiverRef{SubMchID: subMchID, AppID: "wx8888888888888888", Type: wechatpay.TypePersonalOpenID,
		Account: "of8YZ6LPmjDmYAqdobIvwTdQQjR8"})
	if err != nil || st.State != wechatpay.ReceiverEffective {
		t.Fatalf("ReceiverResult = %+v, %v", st, err)
	}
	if r := s.requests(); len(r) != 1 || r[0].uri != "/v3/global/profit-sharing/receivers/of8YZ6LPmjDmYAqdobIvwTdQQjR8?appid=wx8888888888888888&sub_mchid="+subMchID+"&type=PERSONAL_OPENID" {
		t.Fatalf("requests %+v", r)
	}
	sub := &sdkSigned{body: `{"sub_mchid":"1900000109","type":"PERSONAL_SUB_OPENID","account":"of8YZ6LPmjDmYAqdobIvwTdQQjR8","relation_type":"SUPPLIER","state":"INIT"}`}
	if _, err := sdkRig(t, sub).ReceiverResult(ctx, wechatpay.ReceiverRef{SubMchID: subMchID, SubAppID: "wx9999999999999999",
		Type: wechatpay.TypePersonalSubOpenID, Account: "of8YZ6LPmjDmYAqdobIvwTdQQjR8"}); err != nil {
		t.Fatal(err)
	}
	if r := sub.requests(); len(r) != 1 || !strings.Contains(r[0].uri, "sub_appid=wx9999999999999999") || strings.Contains(r[0].uri, "&appid=") {
		t.Fatalf("requests %+v", r)
	}
	for _, ref := range []wechatpay.ReceiverRef{
		{SubMchID: subMchID, Type: wechatpay.TypePersonalOpenID, Account: "of8YZ6LPmjDmYAqdobIvwTdQQjR8"},
		{SubMchID: subMchID, AppID: "wx8888888888888888", Type: wechatpay.TypePersonalSubOpenID, Account: "of8YZ6LPmjDmYAqdobIvwTdQQjR8"},
	} {
		if _, err := c.ReceiverResult(ctx, ref); err == nil || !strings.Contains(err.Error(), "appid") {
			t.Fatalf("%+v: %v", ref, err)
		}
	}
	if n := len(s.requests()); n != 1 {
		t.Fatalf("%d requests: a query without its app id was sent", n)
	}
}

// Remaining amount without unsplit_amount, which the published answer
// always carries: read as 0, it said WeChat Pay holds nothing of the
// transaction, which the distribute stage takes as the seller's share
// released (an item paid on a field that was not there). An answer that
// lacks it cannot be used.
func TestAnAmountsAnswerWithoutTheAmountIsUnreadable(t *testing.T) {
	c := sdkRig(t, &sdkSigned{body: `{"transaction_id":"4208450740201411110007820472","currency":"CNY"}`})
	u, err := c.RemainingAmount(context.Background(), subMchID, "4208450740201411110007820472")
	var we *wechatpay.Error
	if !errors.As(err, &we) || !we.Unreadable() {
		t.Fatalf("RemainingAmount = %+v, %v: want an answer that cannot be read", u, err)
	}
}
