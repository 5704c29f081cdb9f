package paysim

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestKeysAndSerialsSurviveARestart: a second start on the same directory
// serves the same keys, serials, API secret and SFTP host key, so the job's
// configuration from the first start still works; another directory gets
// keys of its own.
func TestKeysAndSerialsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	start := func(dir string) (Config, []byte, map[string][]byte) {
		t.Helper()
		s, err := Start(Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		files := map[string][]byte{}
		for _, f := range []string{s.Config.OurKeyFile, s.Config.InfiniaPublicKeyFile, s.Config.SFTPKeyFile, s.Config.PayProtocolSecretFile,
			s.Config.WeChatKeyFile, s.Config.WeChatPlatformKeyFile} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			files[f] = b
		}
		return s.Config, s.SFTP.HostKey().Marshal(), files
	}
	c1, host1, files1 := start(dir)
	c2, host2, files2 := start(dir)
	if c1.WeChatSerial != c2.WeChatSerial || c1.WeChatPlatformSerial != c2.WeChatPlatformSerial {
		t.Fatalf("serials changed: %s %s, then %s %s", c1.WeChatSerial, c1.WeChatPlatformSerial, c2.WeChatSerial, c2.WeChatPlatformSerial)
	}
	if !bytes.Equal(host1, host2) {
		t.Fatal("the SFTP host key changed: known_hosts from the first start no longer matches")
	}
	for f, b := range files1 {
		if !bytes.Equal(b, files2[f]) {
			t.Errorf("%s changed across a restart", f)
		}
	}
	c3, host3, _ := start(t.TempDir())
	if c3.WeChatSerial == c1.WeChatSerial || bytes.Equal(host3, host1) {
		t.Fatal("a new directory reused another's keys")
	}
}

// TestConfigPathsAreAbsolute: started with a relative --dir, the key paths
// it prints still work for a job started in another directory.
func TestConfigPathsAreAbsolute(t *testing.T) {
	t.Chdir(t.TempDir())
	s, err := Start(Options{Dir: "paysim-data"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{s.Config.OurKeyFile, s.Config.KnownHostsFile, s.Config.PayProtocolSecretFile, s.Config.WeChatKeyFile} {
		if !filepath.IsAbs(p) {
			t.Errorf("%s is relative", p)
		}
	}
}
