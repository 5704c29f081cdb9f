package main

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/settlekit/settle/internal/paysim"
)

// eioFile returns a file whose reading fails with EIO, as a volume's I/O
// error fails it: /proc/self/mem, read from address 0, which no process
// maps. The test is skipped where it does not.
func eioFile(t *testing.T) string {
	t.Helper()
	const mem = "/proc/self/mem"
	if _, err := os.ReadFile(mem); !errors.Is(err, syscall.EIO) {
		t.Skipf("reading %s: %v, want EIO", mem, err)
	}
	return mem
}

// TestAFileThatFailsAMomentIsNoConfiguration: the files settle reads at
// start-up - rules, queries, database URL files, an sslrootcert, keys,
// secrets, layouts - were exit 2, the Job failed for good, whatever failed
// in reading them: an I/O error of their volume (a network file system's
// server gone a moment) among them. That is exit 1, a retry may read it;
// a file missing, or a directory in its place (the rules' was exit 1), is
// configuration (exit 2). Each message names the flag and the file.
func TestAFileThatFailsAMomentIsNoConfiguration(t *testing.T) {
	t.Parallel()
	eio := eioFile(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	sim, err := paysim.Start(paysim.Options{Dir: t.TempDir(), ShareKeys: true, KeyBits: testKeyBits})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	base := map[string]string{flagRules: validRules(t), flagDatabaseURL: unreachableDB}
	providers := sim.Config.Args()
	for i := 0; i+1 < len(providers); i += 2 {
		base[strings.TrimPrefix(providers[i], "--")] = providers[i+1]
	}
	for _, tc := range []struct {
		flag string // the file's flag; what the message names
		drop string // a flag the file's stands for
		set  func(args map[string]string, file string)
	}{
		{flag: flagRules},
		{flag: flagSourceQuery},
		{flag: flagSellersQuery},
		{flag: flagLateRefundsQ},
		{flag: flagDatabaseURLFile, drop: flagDatabaseURL},
		{flag: flagSourceURLFile},
		{flag: "sslrootcert", set: func(args map[string]string, file string) {
			args[flagDatabaseURL] = "postgres://settle@127.0.0.1:1/nowhere?sslmode=verify-full&sslrootcert=" + file
		}},
		{flag: flagInfiniaKey},
		{flag: flagInfiniaPub},
		{flag: flagSFTPKey},
		{flag: flagInfiniaLayout},
		{flag: flagPPSecret},
		{flag: flagWXKey},
		{flag: flagWXPlatKey},
		{flag: flagWXPlatVerify},
		{flag: flagWXPlatVerify, set: func(args map[string]string, file string) {
			args[flagWXPlatVerify] = "PUB_KEY_ID_0114232134912410000000000099=" + file
		}},
		{flag: flagWXBillLayout},
	} {
		for _, file := range []struct {
			path string
			code int
		}{{eio, 1}, {missing, 2}, {dir, 2}} {
			args := maps.Clone(base)
			delete(args, tc.drop)
			if tc.set != nil {
				tc.set(args, file.path)
			} else {
				args[tc.flag] = file.path
			}
			cmd := []string{"run", "--date", "2026-11-23", "--dry-run"}
			for f, v := range args {
				cmd = append(cmd, "--"+f, v)
			}
			stdout, stderr, code := invoke(nil, cmd...)
			out := stdout + stderr
			named := strings.Contains(out, tc.flag) && strings.Contains(out, file.path)
			if code != file.code || !named || (code == 1) != strings.Contains(out, "a retry may read it") {
				t.Errorf("%s %s: exit %d, want %d naming it (and, for exit 1, that a retry may read it):\n%s", tc.flag, file.path, code, file.code, out)
			}
		}
	}
}
