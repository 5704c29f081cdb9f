package main

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"slices"

	"github.com/gocarina/gocsv"

	"github.com/settlekit/settle/load"
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
	e.checkManifest(day)
	for _, m := range e.mismatches(day) {
		e.t.Logf("%s mismatch: %+v", when, m)
	}
	return lines
}

// checkManifest checks that day's manifest.csv names the five reports, in
// the order written, each with the sha256 and size of the file in place.
func (e *env) checkManifest(day string) {
	e.t.Helper()
	var lines []load.ManifestLine
	if err := gocsv.UnmarshalBytes(readFile(e.t, filepath.Join(e.reports, day, load.ManifestName)), &lines); err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, l := range lines {
		names = append(names, l.File)
		b := readFile(e.t, filepath.Join(e.reports, day, l.File))
		if sum := sha256.Sum256(b); l.SHA256 != hex.EncodeToString(sum[:]) || l.Bytes != int64(len(b)) {
			e.t.Errorf("%s manifest: %+v, the file has %d bytes, sha256 %x", day, l, len(b), sum)
		}
	}
	if want := reportFiles[:5]; !slices.Equal(names, want) {
		e.t.Errorf("%s manifest names %v, want %v", day, names, want)
	}
}

