package pipeline

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Deterministic keys: the same date, order and attempt always give the
// same key, so a re-run re-uses what was sent.

// ShortHash is a stable 12-hex-digit digest of parts, for keys that must be
// deterministic, short and free of the characters ids may contain; every
// provider's idempotency keys use it, so a key never changes with the code
// that computes it.
func ShortHash(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return strings.ToUpper(hex.EncodeToString(h[:6]))
}

// QueryRequestNo returns a fresh requestNo for a query (balance, status):
// unlike a money request's, it must differ every time, or a provider that
// replays answers by requestNo would replay a stale one.
func QueryRequestNo(kind string) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return kind + "-" + strings.ToUpper(hex.EncodeToString(b[:]))
}
