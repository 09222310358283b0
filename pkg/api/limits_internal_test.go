package api

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/sse-broker/broker/pkg/auth"
)

func TestNewLimiterWindow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rate   float64
		limit  int
		window time.Duration
	}{
		{5, 5, time.Second},
		{1, 1, time.Second},
		{2.5, 3, 1200 * time.Millisecond},
		{0.5, 1, 2 * time.Second},
		{1000, 1000, time.Second},
	} {
		l := newLimiter(tc.rate)
		if l == nil || l.limit != tc.limit || l.window != tc.window {
			t.Errorf("newLimiter(%v) = %+v, want %d per %v", tc.rate, l, tc.limit, tc.window)
		}
	}
	for _, off := range []float64{0, -1} {
		if l := newLimiter(off); l != nil {
			t.Errorf("newLimiter(%v) = %+v, want nil (no limit)", off, l)
		}
		if err := newLimiter(off).allow("k", 1000, time.Now(), "events"); err != nil {
			t.Errorf("a nil limiter refused: %v", err)
		}
	}
}

// The Retry-After a refusal carries is exact: the same request a moment
// before it is still refused, at it passes. Checked over many fill levels,
// positions in the window and request sizes, on a fake clock.
func TestLimiterRetryAfterIsExact(t *testing.T) {
	t.Parallel()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	checked := 0
	for _, rate := range []float64{5, 2.5, 0.5} {
		for startMs := 0; startMs < 2000; startMs += 130 {
			for _, n := range []int{1, 2, 3} {
				l := newLimiter(rate)
				if n > l.limit {
					continue
				}
				now := base.Add(time.Duration(startMs) * time.Millisecond)
				// Spend the budget in a few steps.
				for i := 0; i < 4*l.limit; i++ {
					_ = l.allow("k", 1, now, "events")
					now = now.Add(70 * time.Millisecond)
				}
				err := l.allow("k", n, now, "events")
				if err == nil {
					continue
				}
				var rl *rateLimitError
				if !errors.As(err, &rl) || !errors.Is(err, errRateLimited) {
					t.Fatalf("refusal %v is not a *rateLimitError wrapping errRateLimited", err)
				}
				wait := rl.RetryAfter()
				if wait <= 0 || wait > 2*l.window {
					t.Fatalf("rate %v, n %d: wait %v outside (0, 2 windows]", rate, n, wait)
				}
				if err := l.allow("k", n, now.Add(wait-time.Millisecond), "events"); err == nil {
					t.Fatalf("rate %v, n %d: passed 1ms before the announced wait %v", rate, n, wait)
				}
				if err := l.allow("k", n, now.Add(wait), "events"); err != nil {
					t.Fatalf("rate %v, n %d: refused after the announced wait %v: %v", rate, n, wait, err)
				}
				checked++
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d refusals checked", checked)
	}
}

// A request larger than the whole budget can never pass: it is refused
// with a message that says so, and counts nothing.
func TestLimiterBatchOverBudget(t *testing.T) {
	t.Parallel()
	l := newLimiter(5)
	now := time.Now()
	err := l.allow("k", 6, now, "events published")
	if !errors.Is(err, errRateLimited) {
		t.Fatalf("6 events at 5/s: %v", err)
	}
	if err := l.allow("k", 5, now, "events published"); err != nil {
		t.Fatalf("the refused batch was counted: %v", err)
	}
}

// Memory stays bounded under many distinct keys: the counter keeps only
// the keys of the current and the previous window.
func TestLimiterMemoryBounded(t *testing.T) {
	t.Parallel()
	l := newLimiter(10)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const perWindow = 5000
	for w := range 20 {
		for i := range perWindow {
			if err := l.allow(fmt.Sprintf("ip:10.%d.%d.%d", w, i/256, i%256), 1, now, "events"); err != nil {
				t.Fatal(err)
			}
		}
		now = now.Add(l.window)
	}
	held := counterKeys(t, l)
	if held > 2*perWindow {
		t.Fatalf("the counter holds %d keys after 20 windows of %d distinct keys, want at most %d", held, perWindow, 2*perWindow)
	}
	// Long after, a key's count is gone.
	if err := l.allow("ip:10.19.0.0", 10, now.Add(2*l.window), "events"); err != nil {
		t.Fatalf("an old count still weighs: %v", err)
	}
}

// counterKeys is the number of keys httprate's local counter holds (its
// two maps), read through reflection: the library does not expose it.
func counterKeys(t *testing.T, l *limiter) int {
	t.Helper()
	v := reflect.ValueOf(l.counter)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	n := 0
	for _, name := range []string{"latestCounters", "previousCounters"} {
		f := v.FieldByName(name)
		if !f.IsValid() || f.Kind() != reflect.Map {
			t.Fatalf("httprate's local counter has no map %s any more: recheck that its memory stays bounded", name)
		}
		n += f.Len()
	}
	return n
}

func TestSubjectOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		remote string
		claims *auth.Claims
		want   string
	}{
		{"192.0.2.7:51234", nil, "ip:192.0.2.7"},
		{"192.0.2.7:51235", nil, "ip:192.0.2.7"},                 // the port does not matter
		{"[2001:db8:1:2:3:4:5:6]:443", nil, "ip:2001:db8:1:2::"}, // an IPv6 client owns its /64
		{"[::ffff:192.0.2.7]:80", nil, "ip:192.0.2.7"},
		{"192.0.2.7:51234", &auth.Claims{Subject: "svc-a"}, "sub:svc-a"},
		{"198.51.100.1:1", &auth.Claims{Subject: "svc-a"}, "sub:svc-a"},            // the subject, wherever it comes from
		{"192.0.2.7:51234", &auth.Claims{}, "ip:192.0.2.7"},                        // a token without sub: by IP
		{"192.0.2.7:1", &auth.Claims{Subject: "ip:192.0.2.7"}, "sub:ip:192.0.2.7"}, // a subject never shares an IP's key
	} {
		r := httptest.NewRequest("GET", "/v1/streams/s/events", nil)
		r.RemoteAddr = tc.remote
		r.Header.Set("X-Forwarded-For", "203.0.113.9") // never trusted
		if tc.claims != nil {
			r = r.WithContext(auth.NewContext(r.Context(), *tc.claims))
		}
		if got := subjectOf(r); got != tc.want {
			t.Errorf("subjectOf(remote %s, claims %+v) = %q, want %q", tc.remote, tc.claims, got, tc.want)
		}
	}
}
