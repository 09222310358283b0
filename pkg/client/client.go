package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults of a Client.
const (
	// DefaultPublishAttempts bounds the tries of one Publish or Close
	// (the first one included).
	DefaultPublishAttempts = 5
	// DefaultAttemptTimeout bounds one attempt of a call other than
	// Subscribe: a broker or a connection that hangs is given up on and,
	// for Publish and Close, tried again, within the caller's context.
	DefaultAttemptTimeout = 10 * time.Second
)

// Client talks to one broker. It is safe for concurrent use.
type Client struct {
	base            string
	hc              *http.Client
	token           func(context.Context) (string, error)
	publishAttempts int
	attemptTimeout  time.Duration // 0: none
}

// Option changes a Client made by New.
type Option func(*Client)

// WithToken sends the token as "Authorization: Bearer <token>" on every
// request.
func WithToken(token string) Option {
	return func(c *Client) {
		c.token = func(context.Context) (string, error) { return token, nil }
	}
}

// WithTokenFunc asks f for the token before every request (a subscription
// asks again on each reconnect): for tokens that expire, since the broker
// ends a subscription when its token does. An error from f fails the
// request (Subscribe treats it as final).
func WithTokenFunc(f func(context.Context) (string, error)) Option {
	return func(c *Client) { c.token = f }
}

// WithHTTPClient sends every request through hc. A hc with a Timeout also
// cuts subscriptions after that time; they then resume, losing nothing,
// but a Timeout of zero suits them better.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// WithPublishAttempts bounds the tries of one Publish or Close (the first
// included); 1 turns retries off. Values below 1 are taken as 1.
func WithPublishAttempts(n int) Option {
	return func(c *Client) { c.publishAttempts = max(1, n) }
}

// WithAttemptTimeout bounds each attempt of every call but Subscribe
// (default DefaultAttemptTimeout); 0 leaves them to the caller's context.
func WithAttemptTimeout(d time.Duration) Option {
	return func(c *Client) { c.attemptTimeout = max(0, d) }
}

// New returns a client of the broker at baseURL (e.g.
// "http://127.0.0.1:8080", or a base path behind a proxy such as
// "https://example.com/broker").
func New(baseURL string, opts ...Option) *Client {
	c := &Client{
		base: strings.TrimRight(baseURL, "/"),
		// No Timeout: it would cut every subscription; each call is bounded
		// by its context instead.
		hc:              &http.Client{},
		publishAttempts: DefaultPublishAttempts,
		attemptTimeout:  DefaultAttemptTimeout,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// streamPath is /v1/streams/{stream} with the id escaped: an id the broker
// would refuse reaches it intact and is answered 400 invalid_stream_id.
// The empty id is the exception where nothing follows it: /v1/streams/ is
// no route (404), so Info and Delete refuse it first (errEmptyStreamID).
func streamPath(stream string, rest string) string {
	return "/v1/streams/" + url.PathEscape(stream) + rest
}

// errEmptyStreamID is Info's and Delete's answer to the empty id, which the
// broker would answer 404 not_found: a caller taking ErrNotFound from
// Delete for "already gone" would pass over the bug.
var errEmptyStreamID = fmt.Errorf("%w: the stream id is empty", ErrInvalidStreamID)

// newRequest builds a request to the broker with ctx, the token and, when
// body is not nil, a JSON body.
func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Request, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("building %s %s: %w", method, path, err)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		// net/http would refuse it on every attempt ("unsupported
		// protocol scheme"), and a subscription retry it forever.
		return nil, fmt.Errorf("the broker URL %q must start with http:// or https://", c.base)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != nil {
		tok, err := c.token(ctx)
		if err != nil {
			return nil, fmt.Errorf("getting the token for %s %s: %w", method, path, err)
		}
		if !validHeaderValue(tok) {
			// net/http would refuse to send it, and a retry the same.
			return nil, fmt.Errorf("the token for %s %s has a control character (a newline read from a file?)", method, path)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	return req, nil
}

// attemptContext bounds one attempt by the client's attempt timeout.
func (c *Client) attemptContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.attemptTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.attemptTimeout)
}

// validHeaderValue reports whether s can be sent as a header value: no
// control characters but tab (RFC 9110 §5.5).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// call sends one JSON request and decodes the answer into out (when out is
// not nil) if its status is want; any other status is an *APIError.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body []byte, want int, out any) error {
	ctx, cancel := c.attemptContext(ctx)
	defer cancel()
	req, err := c.newRequest(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %w", method, path, readAPIError(resp))
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return nil
}
