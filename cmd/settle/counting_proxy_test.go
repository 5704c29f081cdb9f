package main

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/settlekit/settle/internal/rsakey"
)

// countingProxy puts a proxy in front of the provider at base (its URL,
// with its path) and returns the proxy's URL, with base's path: each
// request match takes is counted in count, and on is called with the
// count before the request is passed on (a provider that changes its mind
// at the n-th request: a key rotated, a secret revoked).
func countingProxy(t *testing.T, base string, count *atomic.Int64, match func(*http.Request) bool, on func(n int64)) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if match(r) {
			on(count.Add(1))
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + u.Path
}

// ourKeyAndAnother returns our private key, read from file, and another
// one, for a provider to take in its place.
func ourKeyAndAnother(t *testing.T, file string) (ours, other *rsa.PrivateKey) {
	t.Helper()
	ours, err := rsakey.LoadPrivate(file)
	if err != nil {
		t.Fatal(err)
	}
	other, err = rsa.GenerateKey(rand.Reader, testKeyBits)
	if err != nil {
		t.Fatal(err)
	}
	return ours, other
}

// personAndLast splits out, a settle process's output, into its NEEDS A
// PERSON lines and its last lines (main's "settle: " lines): a stop for
// our refused credentials must end in exactly one of the latter, with
// what the stage left for a person in the former.
func personAndLast(out string) (person, last []string) {
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(line, "NEEDS A PERSON") {
			person = append(person, line)
		}
		if strings.HasPrefix(line, "settle: ") {
			last = append(last, line)
		}
	}
	return person, last
}
