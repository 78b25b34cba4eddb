package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReference: docs/config.md is what the registry generates.
func TestReference(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "config.md")
	want := Reference()
	if os.Getenv("PGWARD_UPDATE_DOCS") != "" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Fatalf("docs/config.md is not what the registry in internal/config generates (%v); regenerate it with:\n  PGWARD_UPDATE_DOCS=1 go test ./internal/config -run TestReference", err)
	}
}
