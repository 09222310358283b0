package client_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sse-broker/broker/internal/testbroker"
	"github.com/sse-broker/broker/pkg/auth"
	"github.com/sse-broker/broker/pkg/client"
)

var testSecret = []byte("client-test-secret-client-test-secret")

// token signs an HS256 token valid for an hour with these rights.
func token(t *testing.T, publish, subscribe []string) string {
	t.Helper()
	streams := map[string]any{}
	if publish != nil {
		streams["publish"] = publish
	}
	if subscribe != nil {
		streams["subscribe"] = subscribe
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "client-test", "exp": time.Now().Add(time.Hour).Unix(), "streams": streams,
	}).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokens(t *testing.T) {
	v, err := auth.NewVerifier("HS256", testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := testbroker.Start(t, testbroker.Options{Auth: v, Retry: 50 * time.Millisecond})
	ctx := testCtx(t)
	publisher := client.New(b.URL, client.WithToken(token(t, []string{"chat-*"}, nil)))
	reader := client.New(b.URL, client.WithToken(token(t, nil, []string{"chat-1"})))
	anonymous := client.New(b.URL)

	res, err := publisher.Publish(ctx, "chat-1", client.Message{Data: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := publisher.CreateStream(ctx, "chat-")
	if err != nil {
		t.Fatalf("create with a publish right on chat-*: %v", err)
	}
	if _, err := publisher.CreateStream(ctx, "other-"); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("create outside the right: %v", err)
	}
	if _, err = anonymous.Publish(ctx, "chat-1", client.Message{Data: "x"}); err == nil {
		t.Fatal("publish without a token succeeded")
	}
	wantAPIError(t, "publish without a token", err, http.StatusUnauthorized, "unauthorized", client.ErrUnauthorized)
	_, err = reader.Publish(ctx, "chat-1", client.Message{Data: "x"})
	wantAPIError(t, "publish with a subscribe right", err, http.StatusForbidden, "forbidden", client.ErrForbidden)
	_, err = publisher.Info(ctx, "chat-1")
	wantAPIError(t, "info with a publish right", err, http.StatusForbidden, "forbidden", client.ErrForbidden)
	if err := reader.Delete(ctx, id); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("delete with a subscribe right: %v", err)
	}

	if info, err := reader.Info(ctx, "chat-1"); err != nil || info.Retained != 1 {
		t.Fatalf("info with the right: %+v, %v", info, err)
	}
	for ev, err := range reader.Subscribe(ctx, "chat-1", client.SubscribeOptions{}) {
		if err != nil || ev.ID != res.IDs[0] || ev.Data != "hi" {
			t.Fatalf("subscribe with the right: %+v, %v", ev, err)
		}
		break
	}
	for _, c := range []struct {
		name   string
		client *client.Client
		stream string
		want   error
	}{
		{"no token", anonymous, "chat-1", client.ErrUnauthorized},
		{"no right on the stream", reader, "chat-2", client.ErrForbidden},
	} {
		got := collect(ctx, c.client, c.stream, client.SubscribeOptions{})
		if len(got.events) != 0 || !errors.Is(got.err, c.want) {
			t.Fatalf("subscribe, %s: %+v, %v; want %v at once", c.name, got.events, got.err, c.want)
		}
	}

	// A token function is asked on every request, reconnects included.
	var asked atomic.Int32
	fresh := client.New(b.URL, client.WithTokenFunc(func(context.Context) (string, error) {
		asked.Add(1)
		return token(t, []string{"chat-*"}, []string{"chat-*"}), nil
	}))
	if _, err := fresh.Publish(ctx, "chat-3", client.Message{Data: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Close(ctx, "chat-3"); err != nil {
		t.Fatal(err)
	}
	if got := collect(ctx, fresh, "chat-3", client.SubscribeOptions{}); got.err != nil || len(got.events) != 2 {
		t.Fatalf("subscribe with a token function: %+v, %v", got.events, got.err)
	}
	if n := asked.Load(); n != 3 {
		t.Fatalf("the token function was asked %d times for 3 requests", n)
	}
	broken := client.New(b.URL, client.WithTokenFunc(func(context.Context) (string, error) {
		return "", errors.New("vault sealed")
	}))
	if got := collect(ctx, broken, "chat-1", client.SubscribeOptions{}); got.err == nil || len(got.events) != 0 {
		t.Fatalf("subscribe with a failing token function: %+v, %v", got.events, got.err)
	}
}
