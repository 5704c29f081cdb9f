package infiniapay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// LostFile decides, for a person who would send the orders of trade file
// f again (settle resolve --trade-file), whether Infinia lost it: Infinia
// answers now that it does not know the file, and f was uploaded (or its
// delivery found unknown) more than lostAfter before now - what the upload
// stage holds for a person (exit 4) instead of waiting on it. up is f's
// upload, found false when none was planned. It returns what was found, to
// be recorded with the file as the proof.
//
// Refused (pipeline.KindUsage), saying what to do instead: a file never
// sent, or whose upload's end is not known yet (the next run finds it
// out); one uploaded less than lostAfter ago (Infinia may not have picked
// it up yet); one Infinia knows, or whose status it answers with what
// cannot be used or refuses to give. Any other error (Infinia not
// answering now) is returned as it is: asking again may do.
func (c *Client) LostFile(ctx context.Context, f pipeline.TradeFile, up pipeline.Effect, found bool, now time.Time, lostAfter time.Duration) (string, error) {
	return lostFile(ctx, stageAPI{c}, f, up, found, now, lostAfter)
}

// lostFile is LostFile over the stages' API.
func lostFile(ctx context.Context, api API, f pipeline.TradeFile, up pipeline.Effect, found bool, now time.Time, lostAfter time.Duration) (string, error) {
	usage := func(format string, args ...any) error {
		return pipeline.Errorf(pipeline.KindUsage, "--trade-file", "%s: "+format, append([]any{f.Name}, args...)...)
	}
	since, what := f.Uploaded, "uploaded"
	if since.IsZero() && found {
		if at, ok := deliveryUnknownSince(up.LastError); ok {
			since, what = at, "its delivery unknown"
		}
	}
	switch {
	case !found || up.Sends == 0:
		return "", usage("never uploaded: the next run of %s uploads it", f.Date)
	case since.IsZero():
		return "", usage("its upload's end is not known yet (%s): the next run of %s finds it out, asking Infinia, then the SFTP server", up.State, f.Date)
	case now.Sub(since) <= lostAfter:
		return "", usage("%s %s ago (at %s), not more than --infinia-lost-after (%s): Infinia may not have picked it up yet; run the date again later",
			what, now.Sub(since).Round(time.Second), since.UTC().Format(time.RFC3339), lostAfter)
	}
	status, _, err := api.UploadStatus(ctx, f)
	var ie *Error
	switch {
	case errors.Is(err, pipeline.ErrNotFound):
		return fmt.Sprintf("Infinia did not know requestNo %s at %s, %s %s before (at %s)", f.RequestNo, now.UTC().Format(time.RFC3339),
			what, roundAge(now.Sub(since)), since.UTC().Format(time.RFC3339)), nil
	case err == nil:
		return "", usage("Infinia knows it (%s): every run of %s asks Infinia about it again; nothing to send again", status, f.Date)
	case errors.Is(err, ErrAnswer), pipeline.SubjectOnly(err), errors.As(err, &ie) && ie.Definite():
		return "", usage("Infinia's answer about it cannot be taken as not knowing it (%v): ask Infinia; nothing recorded", err)
	}
	return "", fmt.Errorf("trade file %s: ask Infinia whether it knows it: %w (nothing recorded)", f.Name, err)
}
