package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/sse-broker/broker/pkg/client"
)

// A service streams an answer into a stream and closes it; another part
// of it follows the stream to its end, across any drop of the connection.
func Example() {
	ctx := context.Background()
	c := client.New("http://127.0.0.1:8080", client.WithToken("<jwt>"))

	stream, err := c.CreateStream(ctx, "chat-")
	if err != nil {
		log.Fatal(err)
	}
	msgs := []client.Message{{Event: "token", Data: "Hel"}, {Event: "token", Data: "lo"}}
	if _, err := c.Publish(ctx, stream, msgs...); err != nil {
		// A new Publish would be a new publish. When the first may have
		// been stored, its key finds out without publishing twice.
		var pe *client.PublishError
		if !errors.As(err, &pe) || !pe.MaybePublished {
			log.Fatal(err) // not published
		}
		if _, err := c.PublishWithKey(ctx, stream, pe.Key, msgs...); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := c.Close(ctx, stream, "done"); err != nil {
		log.Fatal(err)
	}

	for ev, err := range c.Subscribe(ctx, stream, client.SubscribeOptions{}) {
		if err != nil {
			log.Fatal(err) // ctx ended, or 400/401/403/404
		}
		switch ev.Kind {
		case client.KindGap:
			fmt.Println("lost events after", ev.Gap.After)
		case client.KindEvent:
			fmt.Println(ev.ID, ev.Name, ev.Data) // the last one is "stop"
		}
	}
}

// Publish sets an Idempotency-Key and retries a lost answer with it: the
// events are stored once, and the ids come back either way.
func ExampleClient_Publish() {
	c := client.New("http://127.0.0.1:8080")
	res, err := c.Publish(context.Background(), "chat-1",
		client.Message{Data: "plain text"},
		client.Message{Event: "usage", Data: map[string]int{"tokens": 12}}) // sent as {"tokens":12}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.IDs)
}
