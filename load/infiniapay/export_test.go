package infiniapay

import (
	"io"
	"strings"

	"github.com/settlekit/settle/pipeline"
)

// StageAPIOf is the stages' API over c, for the package's external tests.
func StageAPIOf(c *Client) API { return stageAPI{c} }

// ReconcilerOf is the matcher's API over c (NewProvider's), for the
// package's external tests.
func ReconcilerOf(c *Client) Reconciler { return stageAPI{c} }

// ParseErrorFile reads an error file in the default layout: see
// Layout.ParseErrorFile.
func ParseErrorFile(r io.Reader) ([]ErrorRow, error) {
	return DefaultLayout().ParseErrorFile(r, DefaultCurrencies())
}

// problem is what addTo adds, its lines joined in one: "" when every
// answer was usable.
func (u *unusableAnswers) problem() string {
	var lines []string
	for _, l := range u.lines() {
		lines = append(lines, l.text)
	}
	return strings.Join(lines, "; ")
}

// StageSenderOf is the distribute stage's revenue share sender over c
// (NewProvider's), the sellers' Infinia ids read from store, for the
// package's external tests.
func StageSenderOf(c *Client, store AccountStore) pipeline.EffectSender {
	return classified{NewRevenueShareSender(c, store, nil, 0, 0)}
}
