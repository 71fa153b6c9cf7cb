package runrec

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteJSONAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.json")
	if err := WriteJSON(p, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "{\n  \"a\": 1\n}\n" {
		t.Fatalf("got %q, %v", b, err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	// A value JSON cannot encode fails before anything is written.
	if err := WriteJSON(filepath.Join(dir, "bad.json"), func() {}); err == nil {
		t.Fatal("encoding a func succeeded")
	}
	// Writing into a missing folder fails and leaves nothing behind.
	if err := WriteJSON(filepath.Join(dir, "no", "r.json"), 1); err == nil {
		t.Fatal("write into a missing folder succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("folder holds %d entries, want only r.json", len(entries))
	}
}
