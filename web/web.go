// Package web holds the pages the broker serves, embedded in the binary:
// plain HTML, CSS and JavaScript with no build step.
package web

import _ "embed"

// DemoPage is the chat demo served at "/".
//
//go:embed demo.html
var DemoPage []byte

// AdminPage is the operator's page served at "/admin".
//
//go:embed admin.html
var AdminPage []byte
