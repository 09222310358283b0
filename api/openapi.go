// Package api holds the OpenAPI 3.1 description of SSE Broker's HTTP API,
// api/openapi.yaml: every endpoint of the v1 contract (SPEC.md) and the
// operator's page, with their requests, answers and error bodies.
//
// The document is embedded so that tools and tests read the same bytes.
// Its tests run a real broker and validate real requests and answers
// against it, so it cannot drift from the code in pkg/api.
package api

import _ "embed"

// OpenAPI is the content of openapi.yaml (YAML, OpenAPI 3.1.0).
//
//go:embed openapi.yaml
var OpenAPI []byte
