package main

import (
	"context"
	"fmt"
)

// preflight checks, before anything is sent, that Infinia Pay takes our
// credentials (one authenticated balance query) and that its SFTP server
// is the one we trust and takes our key. A refusal is of kind
// pipeline.KindUsage (exit 2), one line naming Infinia Pay and what was
// refused; nothing is retried. Other errors (a provider down) come as they
// are.
func (s *infiniaSetup) preflight(ctx context.Context) error {
	if err := s.client.Preflight(ctx); err != nil {
		return err
	}
	if err := s.sftp.Connect(ctx); err != nil {
		return fmt.Errorf("sftp of Infinia Pay: %w", err)
	}
	return nil
}
