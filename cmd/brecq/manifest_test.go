package main

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/brecq-go/brecq/brecq/runrecord"
)

// manifestLine is one command line of results/runs.txt.
type manifestLine struct {
	line   int
	args   []string // after "brecq"
	record string   // the --json value (the last one)
}

// readManifest parses a runs.txt manifest.
func readManifest(t *testing.T, path string) []manifestLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []manifestLine
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if fields[0] != "brecq" || len(fields) < 2 {
			t.Errorf("%s:%d: does not start with 'brecq <command>': %s", path, n, text)
			continue
		}
		m := manifestLine{line: n, args: fields[1:]}
		for i, a := range m.args {
			if a == "--json" && i+1 < len(m.args) {
				m.record = m.args[i+1]
			}
		}
		if m.record == "" {
			t.Errorf("%s:%d: no --json record: %s", path, n, text)
			continue
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRunsManifest checks results/runs.txt against results/*.json: every run
// record has exactly one line, whose command is the record's own "command",
// and every line names a record that exists. Files in results/ that are not
// run records (the bench and sensitivity files) are not in the manifest.
func TestRunsManifest(t *testing.T) {
	root := "../.."
	lines := readManifest(t, filepath.Join(root, "results", "runs.txt"))
	byRecord := map[string]manifestLine{}
	for _, m := range lines {
		if prev, ok := byRecord[m.record]; ok {
			t.Errorf("runs.txt lines %d and %d both write %s", prev.line, m.line, m.record)
		}
		byRecord[m.record] = m
		if m.args[0] != "quantize" && m.args[0] != "mixed" {
			t.Errorf("runs.txt:%d: command %q writes no run record (want quantize or mixed)", m.line, m.args[0])
		}
		if !strings.HasPrefix(m.record, "results/") || filepath.Ext(m.record) != ".json" {
			t.Errorf("runs.txt:%d: record %s is not results/*.json", m.line, m.record)
		}
		if _, err := os.Stat(filepath.Join(root, m.record)); err != nil {
			t.Errorf("runs.txt:%d: its record is missing: %v", m.line, err)
		}
	}
	files, err := filepath.Glob(filepath.Join(root, "results", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	records := 0
	for _, f := range files {
		rel := "results/" + filepath.Base(f)
		r, err := runrecord.Load(f)
		if errors.Is(err, runrecord.ErrNotRecord) {
			if _, ok := byRecord[rel]; ok {
				t.Errorf("runs.txt names %s, which is not a run record", rel)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		records++
		m, ok := byRecord[rel]
		if !ok {
			t.Errorf("run record %s has no line in results/runs.txt (its command: brecq %s)", rel, r.Command)
			continue
		}
		if got := strings.Join(m.args, " "); got != r.Command {
			t.Errorf("runs.txt:%d: line\n\tbrecq %s\ndiffers from the command of %s:\n\tbrecq %s", m.line, got, rel, r.Command)
		}
	}
	if records == 0 || records != len(lines) {
		t.Errorf("%d run records, %d manifest lines", records, len(lines))
	}
}
