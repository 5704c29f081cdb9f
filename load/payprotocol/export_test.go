package payprotocol

// FinalKey is finalKey, for the tests.
var FinalKey = finalKey
