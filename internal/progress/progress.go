// Package progress draws a one-line progress bar on a terminal, or prints a
// line every few seconds when the output is not a terminal (logs, CI).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Bar is a progress bar for total steps.
type Bar struct {
	w        io.Writer
	label    string
	total    int
	start    time.Time
	last     time.Time
	tty      bool
	interval time.Duration
}

// New starts a bar writing to w (os.Stderr when nil).
func New(w io.Writer, label string, total int) *Bar {
	if w == nil {
		w = os.Stderr
	}
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	iv := 10 * time.Second
	if tty {
		iv = 200 * time.Millisecond
	}
	return &Bar{w: w, label: label, total: total, start: time.Now(), tty: tty, interval: iv}
}

// Update shows that done steps are finished, with a free-form status such as "loss 0.31 acc 89.2%".
func (b *Bar) Update(done int, status string) {
	now := time.Now()
	if done < b.total && now.Sub(b.last) < b.interval {
		return
	}
	b.last = now
	el := now.Sub(b.start)
	eta := ""
	if done > 0 && done < b.total {
		rem := time.Duration(float64(el) * float64(b.total-done) / float64(done))
		eta = " eta " + rem.Round(time.Second).String()
	}
	frac := float64(done) / float64(max(b.total, 1))
	const width = 24
	n := int(frac * width)
	bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
	line := fmt.Sprintf("%s [%s] %d/%d %s%s %s", b.label, bar, done, b.total, el.Round(time.Second), eta, status)
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s", line)
		if done >= b.total {
			fmt.Fprintln(b.w)
		}
	} else {
		fmt.Fprintln(b.w, line)
	}
}

// Elapsed is the time since the bar started.
func (b *Bar) Elapsed() time.Duration { return time.Since(b.start) }
