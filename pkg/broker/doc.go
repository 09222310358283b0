// Package broker holds the semantics of SSE Broker without any HTTP:
// streams, event ids, bounded history, replay decisions and fan-out to
// subscriber queues.
//
// Data flows one way. A publish goes Broker → Store, which assigns ids,
// appends to history and hands the encoded Frame to the Hub (the Fanout of
// this node); the Hub puts the frame on every subscriber's bounded queue;
// the transport (pkg/api) drains a Subscription and writes its bytes.
//
// Lock order (a lock may be taken while holding the ones above it, never
// the other way round):
//
//	store locks (memory store: Store.mu, then its stream.mu; Redis store: watchMu)
//	activity.mu (the activity figures; it asks the Hub for subscriber counts)
//	Hub.tickMu (heartbeat ticks only)
//	  Hub.mu (read or write)
//	    hubStream.mu
//	      Subscriber.mu
package broker
