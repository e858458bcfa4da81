package s3test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// Request is what the proxy saw of one request.
type Request struct {
	Method string
	Path   string
	Header http.Header
	// Failed is true when the proxy answered 500 itself instead of passing it on.
	Failed bool
}

// Proxy is a reverse proxy in front of an S3 server. It answers 500 to the next N requests
// when told to, runs an optional hook before passing a request on, and records every request.
type Proxy struct {
	// URL is the proxy's endpoint.
	URL string

	mu       sync.Mutex
	failNext int
	hook     func(*http.Request)
	requests []Request
	fault    *Fault
	matched  int
}

// Fault fails every request that Match accepts from the After-th one on (1 = the first), as a
// run killed at that request would leave the bucket: what came before landed, nothing after.
type Fault struct {
	Match func(*http.Request) bool
	After int
	// Abort drops the connection without an answer instead of answering 500.
	Abort bool
}

// IsPut matches object writes.
func IsPut(r *http.Request) bool { return r.Method == http.MethodPut }

// Inject sets the fault (nil removes it) and restarts its count.
func (p *Proxy) Inject(f *Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault, p.matched = f, 0
}

// StartProxy proxies to the server at target until the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("proxy target %q: %v", target, err)
	}
	p := &Proxy{}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		// The client signed the Host it sent to the proxy; keep it so SigV4 still verifies.
		r.Out.Host = r.In.Host
	}}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.serveFault(w, r) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	p.URL = hs.URL
	return p
}

// FailNext makes the proxy answer the next n requests with 500 InternalError.
func (p *Proxy) FailNext(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failNext = n
}

// OnRequest sets a hook run before each request is passed on (nil removes it).
func (p *Proxy) OnRequest(hook func(*http.Request)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hook = hook
}

// Requests returns what the proxy has seen so far, in order.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.requests...)
}

// serveFault records r, and answers it with a 500 when a fault is due.
func (p *Proxy) serveFault(w http.ResponseWriter, r *http.Request) bool {
	p.mu.Lock()
	fail := p.failNext > 0
	if fail {
		p.failNext--
	}
	abort := false
	if f := p.fault; f != nil && f.Match(r) {
		p.matched++
		if p.matched >= f.After {
			fail, abort = true, f.Abort
		}
	}
	hook := p.hook
	p.requests = append(p.requests, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Failed: fail})
	p.mu.Unlock()
	if abort {
		panic(http.ErrAbortHandler) // the server closes the connection, answering nothing
	}
	if fail {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?>` +
			`<Error><Code>InternalError</Code><Message>fault injected by s3test.Proxy</Message></Error>`))
		return true
	}
	if hook != nil {
		hook(r)
	}
	return false
}
