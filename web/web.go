// Package web holds the pages the broker serves, embedded in the binary:
// plain HTML, CSS and JavaScript with no build step.
package web

import _ "embed"

// DemoPage is the chat demo served at "/".
//
//go:embed demo.html
var DemoPage []byte
