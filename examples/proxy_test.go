package examples_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// proxied is one POST that went through the lossy proxy.
type proxied struct {
	Path     string
	Key      string // Idempotency-Key
	Status   int    // the broker's answer
	Replayed bool   // Idempotent-Replayed: true
	Dropped  bool   // the broker handled it, the publisher never heard
}

// lossyProxy forwards requests to the broker, but for two of them it lets
// the broker do the work and then cuts the connection before the answer:
// the first attempt of the publisher's dropAt-th publish (a retry with the
// same Idempotency-Key is not a new publish), and its first close. It is how a publisher meets a lost answer: it cannot tell whether
// the request was done, so a retry must be safe.
type lossyProxy struct {
	URL    string
	dropAt int
	// cutBody: the two answers are cut halfway through their body instead
	// of before it (the status and headers arrive, then the connection
	// ends).
	cutBody bool

	mu        sync.Mutex
	posts     []proxied
	keys      map[string]bool // Idempotency-Keys seen
	publishes int             // publishes seen, retries with a known key not counted
	closeCut  bool
}

func startLossyProxy(t *testing.T, upstream string, dropAt int, cutBody bool) *lossyProxy {
	t.Helper()
	p := &lossyProxy{dropAt: dropAt, cutBody: cutBody, keys: map[string]bool{}}
	transport := &http.Transport{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.serve(t, transport, upstream, w, r)
	}))
	p.URL = srv.URL
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		transport.CloseIdleConnections()
	})
	return p
}

func (p *lossyProxy) serve(t *testing.T, transport http.RoundTripper, upstream string, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out.Header = r.Header.Clone()
	res, err := transport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	answer, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}

	drop := false
	if r.Method == http.MethodPost {
		key := r.Header.Get("Idempotency-Key")
		p.mu.Lock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/messages"):
			// A request without a key counts as a new publish each time:
			// its retry is indistinguishable from the next token.
			if key == "" || !p.keys[key] {
				p.publishes++
				drop = p.publishes == p.dropAt
			}
			if key != "" {
				p.keys[key] = true
			}
		case strings.HasSuffix(r.URL.Path, "/close"):
			drop = !p.closeCut
			p.closeCut = true
		}
		p.posts = append(p.posts, proxied{
			Path: r.URL.Path, Key: key, Status: res.StatusCode,
			Replayed: res.Header.Get("Idempotent-Replayed") == "true", Dropped: drop,
		})
		p.mu.Unlock()
	}
	if drop {
		// The broker has done it; the publisher hears a connection cut
		// before any answer, or halfway through its body.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("lossy proxy: hijack: %v", err)
			return
		}
		if p.cutBody {
			fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
				res.StatusCode, http.StatusText(res.StatusCode), res.Header.Get("Content-Type"), len(answer))
			_, _ = conn.Write(answer[:len(answer)/2])
		}
		conn.Close()
		return
	}
	for k, vs := range res.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(answer)
}

// requests returns the POSTs seen so far, in order.
func (p *lossyProxy) requests() []proxied {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]proxied(nil), p.posts...)
}
