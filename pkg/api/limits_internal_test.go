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
		// Outside [MinRate, MaxRate] (the configuration refuses such rates)
		// the nearer bound: below, the window overflowed into a negative
		// one that let everything pass; above, it rounded to 0 and refused
		// everything.
		{1e-10, 1, 1000 * time.Second},
		{1e19, 1e9, time.Second},
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
			for _, n := range []int{1, 2, 3, 7, 12} { // some above the budget
				l := newLimiter(rate)
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

// A batch larger than a window's budget passes when nothing of its key is
// counted, and holds the key back as long as its events take at the rate;
// the Retry-After of what follows is exact. (It used to be refused for
// good, each time with a Retry-After at which it was refused again.)
func TestLimiterBatchOverBudget(t *testing.T) {
	t.Parallel()
	l := newLimiter(5) // 5 per 1 s window
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := l.allow("k", 12, now, "events"); err != nil {
		t.Fatalf("12 events at 5/s with nothing counted: %v", err)
	}
	// 12 events are 2.4 s at 5/s.
	err := l.allow("k", 1, now.Add(time.Millisecond), "events")
	var rl *rateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter() != 2399*time.Millisecond {
		t.Fatalf("the next event after 12 at 5/s: %v, want a refusal with Retry-After 2.399s", err)
	}
	if err := l.allow("k", 1, now.Add(2399*time.Millisecond), "events"); err == nil {
		t.Fatal("passed 1 ms before the debt was paid")
	}
	if err := l.allow("k", 5, now.Add(2400*time.Millisecond), "events"); err != nil {
		t.Fatalf("a full window refused once the debt was paid: %v", err)
	}
	// Other keys do not share the debt.
	if err := l.allow("other", 5, now, "events"); err != nil {
		t.Fatalf("another key: %v", err)
	}
}

// A charge (a demo answer's events, published over time) is made whenever
// one event would pass, also right after another publish, and
// then holds the key back as long as its events and those already counted
// take at the rate.
func TestLimiterCharge(t *testing.T) {
	t.Parallel()
	l := newLimiter(5) // 5 per 1 s window
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := l.allow("k", 1, now, "events"); err != nil { // the page's create
		t.Fatal(err)
	}
	if err := l.allow("k", 46, now.Add(time.Millisecond), "events"); err == nil {
		t.Fatal("a batch of 46 at 5/s passed with an event counted")
	}
	if _, err := l.take("k", 46, now.Add(time.Millisecond), "events"); err != nil {
		t.Fatalf("one event fits, so the charge is made: %v", err)
	}
	// 1 + 46 events are 9.4 s at 5/s, from the charge.
	_, takeErr := l.take("k", 46, now.Add(2*time.Millisecond), "events")
	for _, err := range []error{
		l.allow("k", 1, now.Add(2*time.Millisecond), "events"),
		takeErr,
	} {
		var rl *rateLimitError
		if !errors.As(err, &rl) || rl.RetryAfter() != 9399*time.Millisecond {
			t.Fatalf("right after a charge of 46 at 5/s: %v, want a refusal with Retry-After 9.399s", err)
		}
	}
	if err := l.allow("k", 5, now.Add(9401*time.Millisecond), "events"); err != nil {
		t.Fatalf("a full window refused once the charge was paid: %v", err)
	}
}

// A client that fills all but one event of its budget, then has a demo
// answer charged (take lets one event through), every time Retry-After
// allows, stays within the rate in the long run, give or take one
// window's budget and one charge. (Counting a charge in the window let
// such a client reach 1.4-1.7 times the rate.)
func TestLimiterChargesKeepTheRate(t *testing.T) {
	t.Parallel()
	const answer = 46
	for _, rate := range []float64{5, 20, 45, 60, 100} {
		l := newLimiter(rate)
		start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(123 * time.Millisecond)
		now, end := start, start.Add(time.Hour)
		passed := 0
		for now.Before(end) {
			// All but one event of what it may publish at once.
			for range l.limit - 1 {
				if l.allow("k", 1, now, "events") != nil {
					break
				}
				passed++
			}
			_, err := l.take("k", answer, now, "events")
			if err == nil {
				passed += answer
				continue
			}
			var rl *rateLimitError
			if !errors.As(err, &rl) || rl.RetryAfter() <= 0 {
				t.Fatalf("rate %v: refusal %v without a wait", rate, err)
			}
			now = now.Add(rl.RetryAfter())
		}
		if most := rate*end.Sub(start).Seconds() + float64(l.limit+answer); float64(passed) > most {
			t.Fatalf("rate %v: %d events passed in an hour, want at most %.0f", rate, passed, most)
		}
	}
}

// A refund undoes its take: the key may publish again at once, and what
// its window counted before the take stays counted.
func TestLimiterRefund(t *testing.T) {
	t.Parallel()
	l := newLimiter(5) // 5 per 1 s window
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := l.allow("k", 3, now, "events"); err != nil {
		t.Fatal(err)
	}
	c, err := l.take("k", 46, now, "events")
	if err != nil {
		t.Fatal(err)
	}
	if w := l.waitFor("k", 1, now); w == 0 {
		t.Fatal("one event fits right after a take of 46")
	}
	l.refund("k", c, now.Add(time.Millisecond))
	if w := l.waitFor("k", 2, now.Add(time.Millisecond)); w != 0 {
		t.Fatalf("after the refund, the 2 events left of the window wait %v", w)
	}
	if w := l.waitFor("k", 3, now.Add(time.Millisecond)); w == 0 {
		t.Fatal("after the refund, the 3 events counted before the take are forgotten")
	}
}

// A refund that comes after its take was served (the answer's first
// publish failed only after its events' time had passed) gives back
// nothing: what the key was charged since, another answer or a batch,
// stays owed.
func TestLimiterLateRefundKeepsLaterDebts(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	later := now.Add(10 * time.Second) // after the 46 events' 9.2 s at 5/s
	for name, meanwhile := range map[string]func(l *limiter) error{
		"another answer": func(l *limiter) error { _, err := l.take("k", 46, later, "events"); return err },
		"a batch":        func(l *limiter) error { return l.allow("k", 12, later, "events") },
	} {
		l := newLimiter(5) // 5 per 1 s window
		c, err := l.take("k", 46, now, "events")
		if err != nil {
			t.Fatal(err)
		}
		if err := meanwhile(l); err != nil {
			t.Fatalf("%s once the first answer's events were paid: %v", name, err)
		}
		l.refund("k", c, later.Add(time.Millisecond))
		if w := l.waitFor("k", 1, later.Add(time.Millisecond)); w == 0 {
			t.Errorf("%s: forgotten by the late refund of the first answer", name)
		}
	}
}

// Sending oversized batches whenever Retry-After allows keeps the long-run
// rate the configured one, give or take one window's budget and one batch.
func TestLimiterOversizedBatchesKeepTheRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rate  float64
		batch int
	}{{5, 12}, {2.5, 40}, {10, 1000}} {
		l := newLimiter(tc.rate)
		start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(123 * time.Millisecond)
		now, end := start, start.Add(time.Hour)
		passed := 0
		for now.Before(end) {
			err := l.allow("k", tc.batch, now, "events")
			if err == nil {
				passed += tc.batch
				continue
			}
			var rl *rateLimitError
			if !errors.As(err, &rl) || rl.RetryAfter() <= 0 {
				t.Fatalf("rate %v: refusal %v without a wait", tc.rate, err)
			}
			now = now.Add(rl.RetryAfter())
		}
		most := tc.rate*end.Sub(start).Seconds() + float64(l.limit+tc.batch)
		if float64(passed) > most || float64(passed) < 0.9*most {
			t.Fatalf("rate %v, batches of %d: %d events passed in an hour, want about %.0f and at most that", tc.rate, tc.batch, passed, most)
		}
	}
}

// Debts are dropped once paid, so keys that never come back do not stay.
func TestLimiterDebtsAreSwept(t *testing.T) {
	t.Parallel()
	l := newLimiter(5)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		if err := l.allow(fmt.Sprintf("k%d", i), 6, now, "events"); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.owing) != 1000 {
		t.Fatalf("%d debts, want 1000", len(l.owing))
	}
	_ = l.allow("late", 1, now.Add(10*time.Second), "events")
	if len(l.owing) != 0 {
		t.Fatalf("%d debts left after all were paid", len(l.owing))
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
