package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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

func TestWriteFileKeepsModeAndLinks(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Errorf("mode after rewrite %v, want 0640", st.Mode().Perm())
	}
	// Through a relative symbolic link in another folder: the link stays,
	// its target gets the data.
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	link := filepath.Join(sub, "link")
	if err := os.Symlink("../f", link); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(link, []byte("via link")); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v, %v", st.Mode(), err)
	}
	if b, _ := os.ReadFile(p); string(b) != "via link" {
		t.Errorf("target holds %q", b)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Errorf("mode after a write through the link %v, want 0640", st.Mode().Perm())
	}
	// A dangling link: the file it names is created.
	dangling := filepath.Join(dir, "dangling")
	os.Symlink("created", dangling)
	if err := WriteFile(dangling, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "created")); string(b) != "x" {
		t.Errorf("dangling link target holds %q", b)
	}
	// A directory is refused by name, a link loop too.
	if err := WriteFile(sub, []byte("x")); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("writing over a directory: %v", err)
	}
	os.Symlink("loop", filepath.Join(dir, "loop"))
	if err := WriteFile(filepath.Join(dir, "loop"), nil); err == nil {
		t.Error("a link loop was written")
	}
}

func TestBatch(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	var bt Batch
	if err := bt.AddBytes(a, []byte("A")); err != nil {
		t.Fatal(err)
	}
	if err := bt.AddJSON(b, []int{1}); err != nil {
		t.Fatal(err)
	}
	// Nothing is in place before the commit.
	for _, p := range []string{a, b} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists before Commit: %v", p, err)
		}
	}
	if err := bt.Commit(); err != nil {
		t.Fatal(err)
	}
	if x, _ := os.ReadFile(a); string(x) != "A" {
		t.Errorf("a holds %q", x)
	}
	if x, _ := os.ReadFile(b); string(x) != "[\n  1\n]\n" {
		t.Errorf("b holds %q", x)
	}
	// A failing writer leaves nothing; Discard removes what was staged.
	var bt2 Batch
	if err := bt2.AddBytes(a, []byte("changed")); err != nil {
		t.Fatal(err)
	}
	if err := bt2.Add(b, func(string) error { return errors.New("boom") }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failing writer: %v", err)
	}
	bt2.Discard()
	if x, _ := os.ReadFile(a); string(x) != "A" {
		t.Errorf("a changed to %q by a discarded batch", x)
	}
	if names, _ := os.ReadDir(dir); len(names) != 2 {
		t.Errorf("folder holds %d entries after Discard, want 2", len(names))
	}
}

func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	if err := CheckWritable(filepath.Join(dir, "new.json")); err != nil {
		t.Errorf("new file in a writable folder: %v", err)
	}
	for _, c := range []struct{ path, want string }{
		{"", "empty path"},
		{filepath.Join(dir, "missing", "x.json"), "missing"},
		{dir, "is a directory"},
	} {
		if err := CheckWritable(c.path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckWritable(%q) = %v, want an error with %q", c.path, err, c.want)
		}
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o555)
		if err := CheckWritable(filepath.Join(ro, "x")); err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("read-only folder: %v", err)
		}
	}
	if names, _ := os.ReadDir(dir); len(names) > 1 {
		t.Errorf("CheckWritable left files: %v", names)
	}
}
