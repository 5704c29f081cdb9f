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
