package main

import (
	"path/filepath"

	"github.com/gocarina/gocsv"

	"github.com/settlekit/settle/pipeline"
)

// checkReportsBalance reads summary.csv and sellers.csv of day and checks that
// they balance, logging each row and every mismatch.
func (e *env) checkReportsBalance(day, when string) []pipeline.SummaryLine {
	e.t.Helper()
	var lines []pipeline.SummaryLine
	if err := gocsv.UnmarshalBytes(readFile(e.t, filepath.Join(e.reports, day, "summary.csv")), &lines); err != nil {
		e.t.Fatal(err)
	}
	for _, l := range lines {
		e.t.Logf("%s summary: %+v", when, l)
		if !l.Balanced || l.Seller != l.Accounted() {
			e.t.Errorf("%s: summary.csv row does not balance: %+v (accounted %d)", when, l, l.Accounted())
		}
	}
	e.sellersReport(day)
	for _, m := range e.mismatches(day) {
		e.t.Logf("%s mismatch: %+v", when, m)
	}
	return lines
}
