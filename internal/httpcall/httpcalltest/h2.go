// Package httpcalltest holds test servers that misbehave below HTTP's
// answers, for the provider clients' tests.
package httpcalltest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"io"
	"math/big"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// StreamResetter is an HTTP/2 server over TLS that reads each request
// whole and then resets its stream with PROTOCOL_ERROR, never answering:
// what a proxy or a server in trouble may do after the request arrived.
// Go's HTTP/2 transport sends such a request again by itself, unasked,
// when it can rewind the body (golang/go#47635).
type StreamResetter struct {
	URL      string // https://127.0.0.1:port
	requests atomic.Int32
	ln       net.Listener
	wg       sync.WaitGroup
	pool     *x509.CertPool
	mu       sync.Mutex
	conns    []net.Conn
}

// NewStreamResetter starts a StreamResetter, closed at the test's end.
func NewStreamResetter(t testing.TB) *StreamResetter {
	t.Helper()
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	s := &StreamResetter{URL: "https://" + ln.Addr().String(), ln: ln, pool: pool}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// Requests is how many requests reached the server.
func (s *StreamResetter) Requests() int { return int(s.requests.Load()) }

// Trust makes hc's transport (an *http.Transport) trust the server.
func (s *StreamResetter) Trust(hc *http.Client) {
	tr := hc.Transport.(*http.Transport)
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{}
	}
	tr.TLSClientConfig.RootCAs = s.pool
}

// HTTP/2 frame types and flags (RFC 9113 section 6).
const (
	frameData, frameHeaders, frameRST, frameSettings, framePing = 0x0, 0x1, 0x3, 0x4, 0x6
	flagEndStream, flagAck                                      = 0x1, 0x1
	errProtocol                                                 = 0x1
)

func (s *StreamResetter) serve(c net.Conn) {
	c.SetDeadline(time.Now().Add(time.Minute))
	preface := make([]byte, 24)
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" {
		return
	}
	write := func(typ, flags byte, stream uint32, payload []byte) error {
		h := make([]byte, 9, 9+len(payload))
		h[0], h[1], h[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
		h[3], h[4] = typ, flags
		binary.BigEndian.PutUint32(h[5:], stream)
		_, err := c.Write(append(h, payload...))
		return err
	}
	if write(frameSettings, 0, 0, nil) != nil {
		return
	}
	head := make([]byte, 9)
	for {
		if _, err := io.ReadFull(c, head); err != nil {
			return
		}
		n := int(head[0])<<16 | int(head[1])<<8 | int(head[2])
		typ, flags, stream := head[3], head[4], binary.BigEndian.Uint32(head[5:])&0x7fffffff
		payload := make([]byte, n)
		if _, err := io.ReadFull(c, payload); err != nil {
			return
		}
		var err error
		switch {
		case typ == frameSettings && flags&flagAck == 0:
			err = write(frameSettings, flagAck, 0, nil)
		case typ == framePing && flags&flagAck == 0:
			err = write(framePing, flagAck, 0, payload)
		case typ == frameHeaders:
			s.requests.Add(1)
			if flags&flagEndStream != 0 {
				err = write(frameRST, 0, stream, binary.BigEndian.AppendUint32(nil, errProtocol))
			}
		case typ == frameData && flags&flagEndStream != 0:
			err = write(frameRST, 0, stream, binary.BigEndian.AppendUint32(nil, errProtocol))
		}
		if err != nil {
			return
		}
	}
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
