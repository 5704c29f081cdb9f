package pipeline

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestProgressLinesAndLiveDisplay(t *testing.T) {
	var logs, live bytes.Buffer
	p := &Progress{}
	p.SetTotal(100)
	p.Add(40)
	ctx, cancel := context.WithTimeout(context.Background(), 130*time.Millisecond)
	defer cancel()
	p.report(ctx, slog.New(slog.NewTextHandler(&logs, nil)), 50*time.Millisecond)
	if !strings.Contains(logs.String(), "msg=progress done=40") || !strings.Contains(logs.String(), "total=100") || !strings.Contains(logs.String(), "left=") {
		t.Fatalf("progress lines: %s", logs.String())
	}
	ctx, cancel = context.WithTimeout(context.Background(), 450*time.Millisecond)
	defer cancel()
	p.live(ctx, &live, StageUpload)
	if !strings.Contains(live.String(), "upload: 40 of 100") || !strings.HasSuffix(live.String(), "\r\033[K") {
		t.Fatalf("live line: %q", live.String())
	}
}
