// Package ctxtime holds the one wait that every retry loop of the project
// needs: a sleep that a context can cut short.
package ctxtime

import (
	"context"
	"time"
)

// Sleep waits d or until ctx ends. It returns ctx.Err() when ctx ended
// first (or had ended already), nil when d passed.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
