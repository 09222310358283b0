package config

import (
	"os"
	"strings"
	"testing"
)

// The README's configuration table is generated from Fields; this keeps
// the documentation from drifting from the code.
func TestReadmeConfigTableInSync(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const start, end = "<!-- config-table:start (generated from internal/config; a test keeps it in sync) -->\n", "<!-- config-table:end -->"
	s := string(readme)
	i, j := strings.Index(s, start), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the config-table markers")
	}
	if got, want := s[i+len(start):j], FieldsMarkdown(); got != want {
		t.Fatalf("README.md config table is stale; replace it with:\n%s", want)
	}
}
