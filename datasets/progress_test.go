package datasets

import (
	"bytes"
	"strings"
	"testing"
)

func TestTextProgress(t *testing.T) {
	var b bytes.Buffer
	p := TextProgress(&b, "val")
	p(25, 100)
	p(50, 100) // within 200 ms of the first: not drawn
	p(100, 100)
	out := b.String()
	lines := strings.Split(out, "\r")
	if len(lines) != 3 || lines[0] != "" {
		t.Fatalf("want two redraws, got %q", out)
	}
	if want := "val [=======>                      ]  25/100  25.0%"; !strings.HasPrefix(lines[1], want) {
		t.Errorf("first draw %q, want prefix %q", lines[1], want)
	}
	if want := "val [==============================] 100/100 100.0%"; !strings.HasPrefix(lines[2], want) || !strings.HasSuffix(lines[2], " img/s\n") {
		t.Errorf("last draw %q, want prefix %q and a rate, then a newline", lines[2], want)
	}
}
