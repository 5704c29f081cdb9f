package payprotocol

// FinalKey is finalKey, for the tests.
var FinalKey = finalKey

// SetVerifyBatch sets how many items the verification reads at a time,
// until restore is called.
func SetVerifyBatch(n int) (restore func()) {
	old := verifyBatch
	verifyBatch = n
	return func() { verifyBatch = old }
}

// SetHeldAnswersMax sets how many answers about held payments the
// verification keeps for the run's reconcile, until restore is called.
func SetHeldAnswersMax(n int) (restore func()) {
	old := heldAnswersMax
	heldAnswersMax = n
	return func() { heldAnswersMax = old }
}

// AskAhead is askAhead, for the tests.
var AskAhead = askAhead

// SplitDecimalsKey is splitDecimalsKey, for the tests.
func SplitDecimalsKey(k string) (chainID int, symbol string, ok bool) {
	id, sym, err := splitDecimalsKey(k)
	return id, sym, err == nil
}
