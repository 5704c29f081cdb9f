package infiniapaytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/settlekit/settle/load/infiniapay"
)

// Notification returns the body of a seller status notification as the
// fake sends it: the request envelope of Infinia's documented example,
// {version, appId, dataType, requestData}, the fields requestNo, sellerId
// and status encrypted with the platform's public key; signed with
// Infinia's private key too only with Options.SignNotifications.
func (s *Server) Notification(requestNo, sellerID, status string) ([]byte, error) {
	data := map[string]string{"requestNo": requestNo, "sellerId": sellerID, "status": status}
	body, err := infiniapay.Seal(s.o.AppID, data, s.platform.Load(), s.o.Keys.InfiniaPrivate, s.o.ChunkSize)
	if err != nil || s.o.SignNotifications {
		return body, err
	}
	var env infiniapay.RequestEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]string{"version": env.Version, "appId": env.AppID, "dataType": env.DataType, "requestData": env.RequestData})
}

// Notify delivers one seller status notification to the platform's webhook
// at url, once (Infinia retries up to 5 times; callers that want that loop
// call Notify again). It sets the binding's status first, as Infinia would,
// and fails unless the answer is 200 with the plain text SUCCESS.
func (s *Server) Notify(ctx context.Context, hc *http.Client, url, requestNo, sellerID, status string) error {
	s.SetBinding(sellerID, status)
	body, err := s.Notification(requestNo, sellerID, status)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("notify %s: %w", requestNo, err)
	}
	defer resp.Body.Close()
	ans, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK || string(bytes.TrimSpace(ans)) != "SUCCESS" {
		return fmt.Errorf("notify %s: HTTP %d %q", requestNo, resp.StatusCode, ans)
	}
	return nil
}

// ClientConfig returns a client configuration that talks to the fake at
// baseURL (an httptest.Server's URL, say) with the platform's keys; callers
// adjust retries, timeouts and limits. It needs Keys.PlatformPrivate and
// Keys.InfiniaPublic.
func (s *Server) ClientConfig(baseURL string) infiniapay.Config {
	return infiniapay.Config{
		BaseURL: baseURL, AppID: s.o.AppID, PlatformID: s.o.PlatformID,
		OurKey: s.o.Keys.PlatformPrivate, InfiniaKey: s.o.Keys.InfiniaPublic,
		Paths: s.o.Paths, HTTP: infiniapay.NewHTTPClient(30 * time.Second),
	}
}
