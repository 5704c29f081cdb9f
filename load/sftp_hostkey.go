package load

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/settlekit/settle/pipeline"
)

// HostKeyError is a refused SSH server: its host key is not one that
// known_hosts File lists for Addr. Nothing is sent to such a server. It is a
// configuration problem (or an attack), never retried: a person must verify
// the provider's new key out of band and update known_hosts.
type HostKeyError struct {
	Addr string // host:port dialled
	File string // the known_hosts file
	// Unknown: File has no entry for Addr at all. Otherwise the key
	// changed: Want holds the entries File has for Addr.
	Unknown bool
	Want    []knownhosts.KnownKey
	Got     ssh.PublicKey // the key the server presented; nil when the handshake did not get that far
	Revoked bool          // Got is marked @revoked in File
	Offered []string      // host key algorithms the server offered, when none matched Want
}

func (e *HostKeyError) Error() string {
	var b strings.Builder
	switch {
	case e.Unknown:
		fmt.Fprintf(&b, "host %s is unknown: known_hosts %s has no entry for it", e.Addr, e.File)
	case e.Revoked:
		fmt.Fprintf(&b, "host key of %s is marked @revoked in known_hosts %s", e.Addr, e.File)
	default:
		fmt.Fprintf(&b, "host key of %s does not match known_hosts %s%s", e.Addr, e.File, wantLines(e.Want))
	}
	if e.Got != nil {
		fmt.Fprintf(&b, ": the server presented %s %s", e.Got.Type(), ssh.FingerprintSHA256(e.Got))
	}
	if len(e.Offered) > 0 {
		fmt.Fprintf(&b, ": the server offers only host keys of type %s", strings.Join(e.Offered, ", "))
	}
	if !e.Unknown && len(e.Want) > 0 {
		var want []string
		for _, k := range e.Want {
			want = append(want, k.Key.Type()+" "+ssh.FingerprintSHA256(k.Key))
		}
		fmt.Fprintf(&b, ", known_hosts has %s", strings.Join(want, ", "))
	}
	b.WriteString("; refused to connect, nothing was uploaded")
	if e.Unknown {
		b.WriteString(" (add the provider's host key to known_hosts after checking its fingerprint out of band)")
	} else {
		b.WriteString(" (if the provider really changed its key, check the new fingerprint out of band and update known_hosts)")
	}
	return b.String()
}

// wantLines formats " (line N)" or " (lines N, M)" for the entries of a host.
func wantLines(want []knownhosts.KnownKey) string {
	var lines []string
	for _, k := range want {
		lines = append(lines, fmt.Sprint(k.Line))
	}
	switch len(lines) {
	case 0:
		return ""
	case 1:
		return " (line " + lines[0] + ")"
	}
	return " (lines " + strings.Join(lines, ", ") + ")"
}

// hostKeys verifies host keys against a known_hosts file.
type hostKeys struct {
	file     string
	callback ssh.HostKeyCallback
}

func loadHostKeys(file string) (*hostKeys, error) {
	if file == "" {
		return nil, errors.New("no known_hosts file configured: the server's host key cannot be verified")
	}
	cb, err := knownhosts.New(file)
	if err != nil {
		// Missing, refused or not valid, configuration; a failure of its
		// file system (EIO, ESTALE), one a retry may get past.
		return nil, pipeline.FileError("read known_hosts", err)
	}
	return &hostKeys{file: file, callback: cb}, nil
}

// known returns the entries the file has for addr reached at remote. The
// knownhosts package has no lookup: asking it to check a fresh random key,
// which no file can contain, yields a KeyError listing the host's entries.
func (h *hostKeys) known(addr string, remote net.Addr) ([]knownhosts.KnownKey, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	err = h.callback(addr, remote, probe)
	var keyErr *knownhosts.KeyError
	if !errors.As(err, &keyErr) {
		return nil, fmt.Errorf("look up %s in known_hosts %s: unexpected answer %v", addr, h.file, err)
	}
	if len(keyErr.Want) == 0 {
		return nil, &HostKeyError{Addr: addr, File: h.file, Unknown: true}
	}
	return keyErr.Want, nil
}

// check is the ssh.HostKeyCallback: it turns the knownhosts errors into a
// HostKeyError that says what to do.
func (h *hostKeys) check(addr string, remote net.Addr, key ssh.PublicKey) error {
	err := h.callback(addr, remote, key)
	if err == nil {
		return nil
	}
	var keyErr *knownhosts.KeyError
	if errors.As(err, &keyErr) {
		return &HostKeyError{Addr: addr, File: h.file, Unknown: len(keyErr.Want) == 0, Want: keyErr.Want, Got: key}
	}
	var revoked *knownhosts.RevokedError
	if errors.As(err, &revoked) {
		return &HostKeyError{Addr: addr, File: h.file, Revoked: true, Want: []knownhosts.KnownKey{revoked.Revoked}, Got: key}
	}
	return err
}

// hostKeyAlgorithms are the algorithms the client may accept a host key
// in: those of the known entries, best first, so that a server holding
// several keys cannot pick one of a type we have no entry for.
func hostKeyAlgorithms(want []knownhosts.KnownKey) []string {
	var algos []string
	for _, k := range want {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	rank := func(a string) int {
		if i := slices.Index(algorithmPreference, a); i >= 0 {
			return i
		}
		return len(algorithmPreference)
	}
	slices.SortStableFunc(algos, func(a, b string) int { return rank(a) - rank(b) })
	return algos
}

var algorithmPreference = []string{
	ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
}

// algorithmsFor maps a key type to the signature algorithms for it: an RSA
// key signs with SHA-2 (ssh-rsa, SHA-1, is not accepted).
func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{keyType}
}

// hostKeyNegotiation turns a failed host key algorithm negotiation (the
// server has no key of a type known_hosts lists for it) into a HostKeyError.
func hostKeyNegotiation(err error, addr, file string, want []knownhosts.KnownKey) error {
	var neg *ssh.AlgorithmNegotiationError
	if errors.As(err, &neg) && neg.What == "host key" {
		return &HostKeyError{Addr: addr, File: file, Want: want, Offered: neg.RequestedAlgorithms}
	}
	return err
}
