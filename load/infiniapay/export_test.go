package infiniapay

// StageAPIOf is the stages' API over c, for the package's external tests.
func StageAPIOf(c *Client) API { return stageAPI{c} }
