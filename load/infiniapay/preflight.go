package infiniapay

import (
	"context"
	"errors"
	"fmt"

	"github.com/settlekit/settle/pipeline"
)

// Preflight makes one cheap authenticated call - a platform balance query
// in Config.PreflightCurrency - to learn before anything is sent whether
// Infinia accepts who we are. It returns nil when Infinia answered with an
// envelope we could open (a balance, or
// an account not found); an error of kind pipeline.KindUsage, one line
// naming Infinia Pay and what was refused, when Infinia refused the query
// for good (our signature or appId: Infinia publishes no code of its own
// for them) or its answer does not verify or decrypt with the keys
// configured; other errors (Infinia unreachable, a transient code after
// the retries) as they come.
func (c *Client) Preflight(ctx context.Context) error {
	_, err := c.Balance(ctx, pipeline.QueryRequestNo("PFB"), c.cfg.PreflightCurrency)
	var ie *Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrCredentials):
		return pipeline.E(pipeline.KindUsage, "Infinia Pay preflight", err)
	case !errors.As(err, &ie):
		return err
	case errors.Is(err, ErrSignature):
		return pipeline.Errorf(pipeline.KindUsage, "Infinia Pay preflight",
			"the answer's signature does not verify with Infinia's public key (--%s): %v", "infinia-public-key-file", err)
	case errors.Is(err, errNotOurKey):
		return pipeline.Errorf(pipeline.KindUsage, "Infinia Pay preflight",
			"the answer does not decrypt with our private key (--%s; does Infinia hold our current public key?): %v", "infinia-private-key-file", err)
	case ie.Definite() && !errors.Is(err, ErrNotFound):
		// A plain balance query refused for good: Infinia does not take
		// our request as we send it (appId, keys, or the account).
		return pipeline.Errorf(pipeline.KindUsage, "Infinia Pay preflight",
			"Infinia refused a balance query in %s, so it would refuse the run's requests: %v", c.cfg.PreflightCurrency, err)
	}
	return fmt.Errorf("preflight of Infinia Pay: %w", err)
}
