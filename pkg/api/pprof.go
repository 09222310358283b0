package api

import (
	"fmt"
	"net/http"
	"net/http/pprof"

	"github.com/go-chi/chi/v5"

	"github.com/sse-broker/broker/pkg/auth"
)

// mountPprof serves net/http/pprof under /debug/pprof/ (config key
// debug.pprof). With auth on, the profiles need a token that may publish
// to every stream (a publish pattern "*", the backend's token): a profile
// shows stream ids, memory contents and the command line, which no
// subscriber token should read. With auth off they are as open as the
// rest of the API, so turn the key on only where the listener is private.
func (s *Server) mountPprof(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate, s.requireRight(mayPublishEverywhere, "profiles need a token that may publish to every stream"))
		r.Get("/debug/pprof", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/debug/pprof/", http.StatusMovedPermanently)
		})
		r.Get("/debug/pprof/cmdline", pprof.Cmdline)
		r.Get("/debug/pprof/profile", pprof.Profile)
		r.Get("/debug/pprof/symbol", pprof.Symbol)
		r.Post("/debug/pprof/symbol", pprof.Symbol)
		r.Get("/debug/pprof/trace", pprof.Trace)
		r.Get("/debug/pprof/*", pprof.Index)
	})
}

// requireRight lets through, with auth on, only a request whose token
// (already verified by authenticate) passes allowed; 403 with why
// otherwise.
func (s *Server) requireRight(allowed func(auth.Claims) bool, why string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if s.opts.Auth == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			claims, ok := auth.FromContext(r.Context())
			if !ok || !allowed(claims) {
				s.writeError(w, r, fmt.Errorf("%w: %s", errForbidden, why))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// mayPublishEverywhere: profiles need a token that may publish to every
// stream.
func mayPublishEverywhere(c auth.Claims) bool { return c.AllowsPrefix(auth.Publish, "") }
