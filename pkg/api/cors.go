package api

import (
	"net/http"

	"github.com/go-chi/cors"
)

// corsMaxAge is how long, in seconds, a browser may cache a preflight's
// answer: ten minutes spares a preflight per publish without pinning a
// changed configuration for long.
const corsMaxAge = 600

// corsMiddleware answers CORS preflights and adds CORS headers for the
// configured origins (go-chi/cors); without origins it changes nothing.
//
// It runs on the root router, before routing and before authenticate: a
// preflight carries no token (browsers never send credentials with it) and
// is answered here on every route, so it neither gets 401 nor reaches a
// handler. Error answers (401, 403, 429, ...) of an allowed origin carry the
// CORS headers too, so the page can read why it was refused.
//
// Credentials (the access_token cookie, EventSource withCredentials) are
// allowed only when every origin is explicit: with "*" a browser refuses a
// credentialed answer anyway, and "*" with credentials would let any site
// read streams with its visitors' cookies. The configuration refuses "*"
// mixed with explicit origins, so "*" here means exactly ["*"].
func (s *Server) corsMiddleware() func(http.Handler) http.Handler {
	origins := s.opts.CORSOrigins
	if len(origins) == 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	credentials := true
	for _, o := range origins {
		if o == "*" {
			credentials = false
		}
	}
	return cors.Handler(cors.Options{
		AllowedOrigins:   origins,
		AllowedMethods:   []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodOptions},
		AllowedHeaders:   []string{"Authorization", "Content-Type", "Last-Event-ID", "Idempotency-Key"},
		ExposedHeaders:   []string{"X-Request-Id", "Idempotent-Replayed", "Retry-After"},
		AllowCredentials: credentials,
		MaxAge:           corsMaxAge,
	})
}
