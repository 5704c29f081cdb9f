package pipeline

// VerifyItem is an item whose payment a provider is to verify before it
// is paid, in its current state (unverified, or held by an earlier
// verification with Reason).
type VerifyItem struct {
	Split
	State  string
	Reason string
}
