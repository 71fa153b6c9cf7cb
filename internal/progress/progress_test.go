package progress

import (
	"bytes"
	"strings"
	"testing"
)

// On an output that is not a terminal the bar prints plain lines (no
// carriage returns or terminal codes), the first and the final drawing
// among them, each with the label, the count and the status.
func TestBarPlainLines(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "epoch 1/2", 3)
	for i := 1; i <= 3; i++ {
		b.Update(i, "loss 0.5")
	}
	out := buf.String()
	if strings.ContainsAny(out, "\r\033") {
		t.Errorf("terminal control characters in %q", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		t.Fatalf("want the first and the final drawing, got %q", out)
	}
	last := lines[len(lines)-1]
	for _, want := range []string{"epoch 1/2 loss 0.5", "3/3", "100%"} {
		if !strings.Contains(last, want) {
			t.Errorf("final line %q lacks %q", last, want)
		}
	}
	if !strings.Contains(lines[0], "epoch 1/2") || !strings.Contains(lines[0], "/3)") {
		t.Errorf("first line %q lacks the label or the count", lines[0])
	}
	if b.Elapsed() <= 0 {
		t.Error("Elapsed not positive")
	}
}
