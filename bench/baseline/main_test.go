package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPublishReachesSubscriber(t *testing.T) {
	h, closeSSE := newHandler()
	ts := httptest.NewServer(h)
	defer ts.Close()
	defer closeSSE()

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+"/events?stream=s1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribe: %d", resp.StatusCode)
	}
	pub, err := http.Post(ts.URL+"/publish?stream=s1", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	pub.Body.Close()
	if pub.StatusCode/100 != 2 {
		t.Fatalf("publish: %d", pub.StatusCode)
	}
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				got <- d
				return
			}
		}
	}()
	select {
	case d := <-got:
		if d != "hello" {
			t.Fatalf("data %q, want hello", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}

	m, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Body.Close()
	sc := bufio.NewScanner(m.Body)
	found := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "process_resident_memory_bytes ") || strings.HasPrefix(sc.Text(), "process_cpu_seconds_total ") {
			found++
		}
	}
	if found != 2 {
		t.Fatalf("metrics: found %d of the 2 process figures", found)
	}
}
