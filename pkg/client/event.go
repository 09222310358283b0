package client

import "time"

// Kind says what an Event is.
type Kind string

const (
	// KindEvent is an event of the stream (stop included: Name "stop").
	KindEvent Kind = "event"
	// KindGap says events were lost: some events after the resume point are
	// no longer retained by the broker, or the resume point is not an id
	// this stream issued (a store reset, a delete). Every retained event
	// follows it, from the oldest. Gap holds what the broker said.
	KindGap Kind = "gap"
)

// Event is one value of a subscription, or one event of a history.
type Event struct {
	Kind Kind
	// ID is the event's id (decimal digits); empty for a gap.
	ID string
	// Name is the event name: "message" by default, "stop" for the last
	// event of a closed stream, "gap" for a gap.
	Name string
	// Data is the event's data as SSE delivers it (for a gap: the raw JSON
	// the broker sent).
	Data string
	// Time is when the broker stored the event; set by History only (SSE
	// does not carry it).
	Time time.Time
	// Gap is set for KindGap only.
	Gap *GapInfo
}

// GapInfo is the data of the broker's gap event.
type GapInfo struct {
	// After is the resume point the subscription asked for.
	After string `json:"after"`
	// First is the first id the broker still retains, or nil when it
	// retains none.
	First *string `json:"first"`
}
