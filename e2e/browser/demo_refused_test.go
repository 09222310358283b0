package browser

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sse-broker/broker/internal/browsertest"
	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/auth"
)

// lastConversation is what the page shows of its latest question.
type lastConversation struct {
	Status   string `json:"status"`
	State    string `json:"state"`
	Disabled bool   `json:"disabled"`
}

const lastConversationJS = `({
	status: [...document.querySelectorAll(".status")].pop().textContent,
	state: [...document.querySelectorAll(".assistant")].pop().dataset.state,
	disabled: document.getElementById("send").disabled,
})`

// waitConversationEnds waits until the page gives the Send button back and
// returns what it shows then.
func waitConversationEnds(t *testing.T, ctx context.Context, what string) lastConversation {
	t.Helper()
	browsertest.WaitFor(t, ctx, 10*time.Second, what, `!document.getElementById("send").disabled`)
	return browsertest.Eval[lastConversation](t, ctx, lastConversationJS)
}

// The subscription is refused (503 too_many_subscribers). EventSource gives
// up on an error status without saying why; the page must say it, not sit
// on "connecting…" with its Send button disabled.
func TestDemoShowsARefusedSubscription(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxSubscribers: 1, DemoTokenDelay: 10 * time.Millisecond, Retry: retry})
	// Someone else holds the only subscriber slot.
	holdCtx, cancelHold := context.WithCancel(context.Background())
	defer cancelHold()
	req, err := http.NewRequestWithContext(holdCtx, http.MethodGet, b.URL+"/v1/streams/other/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("holding the one subscriber slot: %v %v", err, res)
	}
	defer res.Body.Close()
	if _, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}

	ctx := browsertest.New(t, 40*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(b.URL+"/")); err != nil {
		t.Fatal(err)
	}
	ask(t, ctx, "hello")
	got := waitConversationEnds(t, ctx, "the page to give Send back after the refused subscription")
	if got.State != "error" || !strings.HasPrefix(got.Status, "error: ") || !strings.Contains(got.Status, "subscribers") {
		t.Fatalf("after the refused subscription the page shows %+v; want state error and the broker's reason (too many subscribers)", got)
	}
}

// /v1/demo/chat refuses (429: every demo place is busy). The page shows the
// error and closes the EventSource it had opened for the answer: left open,
// it would overwrite the error with "streaming", and six of them would hold
// every connection Chromium allows per host, so the seventh question hangs.
func TestDemoRefusedQuestionLeavesNoConnection(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{DemoTokenDelay: 2 * time.Second, Retry: retry})
	var wg sync.WaitGroup
	for i := range 64 { // every place, each answer now ~80 s long
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body := post(t, b.URL, "/v1/demo/chat", "application/json", fmt.Sprintf(`{"stream":"busy-%d","message":"x"}`, i))
			if status != http.StatusAccepted {
				t.Errorf("filling demo slot %d: %d %s", i, status, body)
			}
		}()
	}
	wg.Wait()

	ctx := browsertest.New(t, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(b.URL+"/")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 7; i++ {
		ask(t, ctx, "question")
		got := waitConversationEnds(t, ctx, fmt.Sprintf("question %d to be refused", i))
		if got.State != "error" || !strings.Contains(got.Status, "demo answers are streaming") {
			t.Fatalf("question %d: the page shows %+v; want state error and the 429's message", i, got)
		}
		waitUntil(t, 5*time.Second, fmt.Sprintf("question %d's EventSource to be closed", i), func() bool {
			return b.Broker.Stats().Subscribers == 0
		})
		// A late "open" must not overwrite the error.
		time.Sleep(100 * time.Millisecond)
		if again := browsertest.Eval[lastConversation](t, ctx, lastConversationJS); again != got {
			t.Fatalf("question %d: the page changed after the error: %+v, was %+v", i, again, got)
		}
		// The refused question is back in the input, to be sent again;
		// cleared here, so that the next ask types it afresh.
		if input := browsertest.Eval[string](t, ctx, `(() => { const v = document.getElementById("message").value; document.getElementById("message").value = ""; return v; })()`); input != "question" {
			t.Fatalf("question %d: after the refusal the input holds %q, want the question back", i, input)
		}
	}
}

// The answer's subscription is refused once (a proxy's 503 while the
// broker restarts), and the page's second request, asking why, meets the
// live stream: the page hangs that up at once and ends the conversation
// with an error that says the stream answers now (not that it ended),
// rather than wait on the stream until the answer is over.
func TestDemoSubscriptionRefusedOnceThenLive(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{DemoTokenDelay: 2 * time.Second, Retry: retry})
	proxy := flushingProxy(t, b.URL)
	var subscribes atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := eventsStream(r); ok && subscribes.Add(1) == 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"store_unavailable","message":"restarting"}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { front.CloseClientConnections(); front.Close() })
	ctx := browsertest.New(t, 40*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(front.URL+"/")); err != nil {
		t.Fatal(err)
	}
	ask(t, ctx, "hello")
	got := waitConversationEnds(t, ctx, "the page to give Send back after the passing refusal")
	if got.State != "error" || !strings.HasPrefix(got.Status, "error: ") || !strings.Contains(got.Status, "answers now") {
		t.Fatalf("after a refusal that passed the page shows %+v, want state error and that the stream answers now", got)
	}
	waitUntil(t, 5*time.Second, "the page to hang up the stream that answered its second request", func() bool {
		return b.Broker.Stats().Subscribers == 0
	})
	if n := subscribes.Load(); n != 2 {
		t.Fatalf("the events URL was requested %d times, want 2 (the refused one and the one asking why)", n)
	}
}

// With auth on, a page whose cookie token may publish and subscribe only
// "demo-*" streams gets its answer: the page creates its stream with that
// prefix (without one, creating needs a publish right on every id).
func TestDemoWithATokenScopedToDemoStreams(t *testing.T) {
	v, err := auth.NewVerifier("HS256", browserSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := testbroker.Start(t, testbroker.Options{Auth: v, DemoTokenDelay: 10 * time.Millisecond, Retry: retry})
	ctx := browsertest.New(t, 40*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(b.URL+"/")); err != nil {
		t.Fatal(err)
	}
	scoped := browserToken(t, []string{"demo-*"}, []string{"demo-*"}, time.Now().Add(time.Hour))
	browsertest.Eval[bool](t, ctx, setCookieJS(scoped))
	ask(t, ctx, "scoped")
	got := waitConversationEnds(t, ctx, "the answer with a demo-* token")
	stream := browsertest.Eval[string](t, ctx, `window.demo.stream`)
	if got.State != "done" || !strings.HasPrefix(stream, "demo-") {
		t.Fatalf("with a demo-* token the page shows %+v on stream %q; want done on a demo- stream", got, stream)
	}
}
