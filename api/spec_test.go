package api_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"testing"
)

// docs/SPEC.md is the repository's copy of the contract, so that the
// README's link works in any checkout. Where the team's original sits
// beside the repository (../shared/SPEC.md), the copy must be the same
// text; a clone on its own has only the copy, and nothing to compare.
func TestSpecCopyIsTheContract(t *testing.T) {
	copied, err := os.ReadFile("../docs/SPEC.md")
	if err != nil {
		t.Fatal(err)
	}
	original, err := os.ReadFile("../../shared/SPEC.md")
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no ../shared/SPEC.md beside this checkout")
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(copied, original) {
		t.Fatal("docs/SPEC.md differs from ../shared/SPEC.md: copy the contract again (cp ../shared/SPEC.md docs/SPEC.md)")
	}
}
