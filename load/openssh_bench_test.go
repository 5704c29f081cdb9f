//go:build linux

package load

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The DESIGN targets (section 8), against the OpenSSH sftp client on the
// same sshd.
const (
	targetLargeRatio = 1.2 // throughput, one large file
	targetSmallRatio = 2.0 // files per second, many small files
)

// benchEnv reads a non-negative integer from the environment, def when unset.
func benchEnv(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

// localFile writes size pseudo-random bytes to path and returns their
// sha256 (hex).
func localFile(b *testing.B, path string, size int64, seed uint64) string {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	src := io.LimitReader(mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)}), size)
	if _, err := io.Copy(io.MultiWriter(f, h), src); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// benchConfig is p's uploader configuration, with the write size and the
// requests in flight from SETTLE_BENCH_PACKET and SETTLE_BENCH_CONCURRENCY
// when set (for tuning; the defaults are what settle uses).
func benchConfig(b *testing.B, p *peer) SFTPConfig {
	cfg := p.config()
	cfg.MaxPacket = benchEnv(b, "SETTLE_BENCH_PACKET", 0)
	cfg.Concurrency = benchEnv(b, "SETTLE_BENCH_CONCURRENCY", 0)
	return cfg
}

// cpu is CPU time used so far: by this process (the client, for settle),
// by its reaped children (the sftp and ssh processes, for OpenSSH) and by
// sshd with its reaped children (the server). On a shared machine wall
// time depends on the neighbours; CPU time per byte much less so.
type cpu struct{ self, children, server time.Duration }

func cpuNow(b *testing.B, p *peer) cpu {
	b.Helper()
	usage := func(who int) time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return cpu{self: usage(syscall.RUSAGE_SELF), children: usage(syscall.RUSAGE_CHILDREN), server: sshdCPU(b, p.pid)}
}

func (c cpu) sub(d cpu) cpu {
	return cpu{c.self - d.self, c.children - d.children, c.server - d.server}
}

// clientServer is the CPU time of the client (settle: this process;
// OpenSSH: sftp and ssh) and of the server, per unit.
func (c cpu) clientServer(openssh bool, units float64) (client, server float64) {
	cl := c.self
	if openssh {
		cl = c.children
	}
	return cl.Seconds() * 1e3 / units, c.server.Seconds() * 1e3 / units
}

// sshdCPU reads the CPU time of sshd and its reaped children from /proc,
// once its connections are over (their processes exited and reaped).
func sshdCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil || len(strings.TrimSpace(string(children))) == 0 {
			break
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name: state is field 3; utime, stime,
	// cutime, cstime are fields 14-17, in clock ticks (100 Hz on Linux).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	var ticks int64
	for _, i := range []int{14, 15, 16, 17} {
		n, err := strconv.ParseInt(f[i-3], 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

func openFile(path string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return os.Open(path) }
}

// openSSHBatch runs the OpenSSH sftp client in batch mode against p.
func openSSHBatch(b *testing.B, p *peer, dir, batch string) {
	b.Helper()
	batchFile := filepath.Join(dir, "batch")
	writeFile(b, batchFile, []byte(batch))
	keyFile := filepath.Join(dir, "id_ed25519")
	writeFile(b, keyFile, p.keyPEM)
	_, port, _ := net.SplitHostPort(p.addr)
	args := []string{"-F", "/dev/null", "-b", batchFile, "-i", keyFile,
		"-o", "UserKnownHostsFile=" + p.knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-P", port}
	// For comparisons beyond the defaults, e.g. "-c aes128-gcm@openssh.com -B 262144".
	args = append(args, strings.Fields(os.Getenv("SETTLE_BENCH_SFTP_ARGS"))...)
	cmd := exec.Command(sftpPath, append(args, p.user+"@127.0.0.1")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", cmd, err, lastLines(out, 10))
	}
}

func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// side is one of the two uploaders compared: what it has used so far.
type side struct {
	wall time.Duration
	cpu  cpu
}

// comparison uploads with settle and with OpenSSH's sftp in turn, in every
// iteration, so that whatever else the machine runs weighs on both alike.
type comparison struct {
	b       *testing.B
	p       *peer
	ours    side
	theirs  side
	n       int
	units   float64 // per upload: MB or files
	unit    string  // "MB" or "file"
	rate    string  // "MB/s" or "files/s"
	digits  int
	summary string // what is compared, for the printed line
	target  float64
}

// time runs upload and adds its wall and CPU time to s.
func (c *comparison) time(s *side, upload func()) {
	before, begin := cpuNow(c.b, c.p), time.Now()
	upload()
	s.wall += time.Since(begin)
	// cpuNow waits for sshd's children to exit: outside the wall time.
	s.cpu = s.cpu.add(cpuNow(c.b, c.p).sub(before))
}

func (c cpu) add(d cpu) cpu {
	return cpu{c.self + d.self, c.children + d.children, c.server + d.server}
}

// run loops over both uploaders and reports their rates, the ratio, and
// the CPU cost per unit of each, client and server.
func (c *comparison) run(ours, theirs func()) {
	for c.b.Loop() {
		c.time(&c.ours, ours)
		c.time(&c.theirs, theirs)
		c.n++
	}
	total := c.units * float64(c.n)
	rate := func(s side) float64 { return total / s.wall.Seconds() }
	r := c.rate
	oc, osv := c.ours.cpu.clientServer(false, total)
	tc, tsv := c.theirs.cpu.clientServer(true, total)
	c.b.ReportMetric(rate(c.ours), "settle-"+r)
	c.b.ReportMetric(rate(c.theirs), "openssh-"+r)
	c.b.ReportMetric(rate(c.ours)/rate(c.theirs), "x")
	c.b.ReportMetric(oc, "settle-cpu-ms/"+c.unit)
	c.b.ReportMetric(tc, "openssh-cpu-ms/"+c.unit)
	fmt.Printf("SFTP %s, %d rounds: settle %.0f %s (CPU ms/%s: client %.*f, sshd %.*f), "+
		"OpenSSH sftp %.0f %s (client %.*f, sshd %.*f): %.2fx (target >= %.1fx)\n",
		c.summary, c.n, rate(c.ours), r, c.unit, c.digits, oc, c.digits, osv,
		rate(c.theirs), r, c.digits, tc, c.digits, tsv, rate(c.ours)/rate(c.theirs), c.target)
}

// BenchmarkUploadLargeFile uploads one file of SETTLE_BENCH_BIG_MB MiB
// (default 200) to a local sshd with settle's uploader (temporary name,
// sha256, size check, posix-rename) and with OpenSSH's sftp client (put to
// the temporary name, rename), connection set-up included in both.
func BenchmarkUploadLargeFile(b *testing.B) {
	requireOpenSSH(b, sshdPath, sftpPath)
	p := startSSHD(b)
	mb := benchEnv(b, "SETTLE_BENCH_BIG_MB", 200)
	size := int64(mb) << 20
	dir := b.TempDir()
	local := filepath.Join(dir, "big.bin")
	sum := localFile(b, local, size, 1)
	ctx := context.Background()
	batch := fmt.Sprintf("put %s upload/.big.bin.part\nrename upload/.big.bin.part upload/big.bin\n", local)

	c := &comparison{b: b, p: p, units: float64(size) / 1e6, unit: "MB", rate: "MB/s", digits: 2,
		summary: fmt.Sprintf("one %d MiB file", mb), target: targetLargeRatio}
	c.run(func() {
		s, err := DialSFTP(ctx, benchConfig(b, p))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Upload(ctx, "big.bin", size, sum, openFile(local)); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}, func() { openSSHBatch(b, p, dir, batch) })
}

// BenchmarkUploadSmallFiles uploads SETTLE_BENCH_SMALL_FILES files (default
// 5000) of about 2 KiB, each to a temporary name renamed into place: settle
// with UploadMany over one connection (SETTLE_BENCH_PARALLEL at a time,
// default 16), OpenSSH's sftp with a batch of put and rename lines.
func BenchmarkUploadSmallFiles(b *testing.B) {
	requireOpenSSH(b, sshdPath, sftpPath)
	p := startSSHD(b)
	count := benchEnv(b, "SETTLE_BENCH_SMALL_FILES", 5000)
	parallel := benchEnv(b, "SETTLE_BENCH_PARALLEL", 16)
	dir := b.TempDir()
	local := filepath.Join(dir, "small")
	if err := os.Mkdir(local, 0o755); err != nil {
		b.Fatal(err)
	}
	files := make([]UploadFile, count)
	var batch strings.Builder
	for i := range files {
		name := fmt.Sprintf("TD_%05d.csv", i)
		path := filepath.Join(local, name)
		size := int64(2048 - 64 + i%128)
		files[i] = UploadFile{Name: name, Size: size, SHA256: localFile(b, path, size, uint64(i)), Open: openFile(path)}
		fmt.Fprintf(&batch, "put %s upload/.%s.part\nrename upload/.%s.part upload/%s\n", path, name, name, name)
	}
	ctx := context.Background()

	c := &comparison{b: b, p: p, units: float64(count), unit: "file", rate: "files/s", digits: 3,
		summary: fmt.Sprintf("%d small files (settle: %d at a time)", count, parallel), target: targetSmallRatio}
	c.run(func() {
		s, err := DialSFTP(ctx, benchConfig(b, p))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.UploadMany(ctx, files, parallel); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}, func() { openSSHBatch(b, p, dir, batch.String()) })
}
