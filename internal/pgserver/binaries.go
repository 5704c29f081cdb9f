package pgserver

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// installRoot is where Debian and Ubuntu install the server binaries of each
// major version: /usr/lib/postgresql/<version>/bin.
const installRoot = "/usr/lib/postgresql"

// ErrNotInstalled is returned (wrapped) by Start when no PostgreSQL server
// binaries are found.
var ErrNotInstalled = errors.New(`no PostgreSQL server binaries found (looked for initdb in PATH and /usr/lib/postgresql/*/bin): install them with "apt-get install postgresql", or name a running server (settle demo --database-url URL; the tests' SETTLE_TEST_DATABASE_URL)`)

// binaries are the absolute paths of the server programs Start runs.
type binaries struct {
	initdb, postgres string
}

// findBinaries looks for initdb (with postgres beside it) in the directories
// of path, then in root/<version>/bin, highest version first.
func findBinaries(path, root string) (binaries, error) {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		initdb := filepath.Join(dir, "initdb")
		if !isExecutable(initdb) {
			continue
		}
		// Debian links initdb into PATH from the versioned directory that
		// holds postgres; look there first.
		if real, err := filepath.EvalSymlinks(initdb); err == nil {
			if b, ok := binariesIn(filepath.Dir(real)); ok {
				return b, nil
			}
		}
		if b, ok := binariesIn(dir); ok {
			return b, nil
		}
	}
	for _, dir := range versionDirs(root) {
		if b, ok := binariesIn(dir); ok {
			return b, nil
		}
	}
	return binaries{}, ErrNotInstalled
}

func binariesIn(dir string) (binaries, bool) {
	b := binaries{initdb: filepath.Join(dir, "initdb"), postgres: filepath.Join(dir, "postgres")}
	if !isExecutable(b.initdb) || !isExecutable(b.postgres) {
		return binaries{}, false
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return binaries{}, false
	}
	return binaries{initdb: filepath.Join(abs, "initdb"), postgres: filepath.Join(abs, "postgres")}, true
}

// versionDirs lists root/*/bin, highest version (15 > 9.6) first.
func versionDirs(root string) []string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var versions []string
	for _, e := range entries {
		if e.IsDir() {
			versions = append(versions, e.Name())
		}
	}
	slices.SortFunc(versions, func(a, b string) int { return compareVersions(b, a) })
	dirs := make([]string, len(versions))
	for i, v := range versions {
		dirs[i] = filepath.Join(root, v, "bin")
	}
	return dirs
}

// compareVersions compares dotted numeric versions ("9.6", "15"); parts
// that are not numbers compare as text.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, errA := strconv.Atoi(pa[i])
		nb, errB := strconv.Atoi(pb[i])
		switch {
		case errA == nil && errB == nil && na != nb:
			return na - nb
		case (errA != nil || errB != nil) && pa[i] != pb[i]:
			return strings.Compare(pa[i], pb[i])
		}
	}
	return len(pa) - len(pb)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
