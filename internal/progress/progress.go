// Package progress shows a one-line progress bar (github.com/schollz/progressbar)
// on a terminal, or prints a plain line every few seconds when the output is
// not a terminal (logs, CI).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Bar is a progress bar for total steps.
type Bar struct {
	bar   *progressbar.ProgressBar
	label string
	start time.Time
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
	opts := []progressbar.Option{
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(24),
		progressbar.OptionSetRenderBlankState(false),
	}
	if tty {
		opts = append(opts, progressbar.OptionSetWriter(w), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
	} else {
		opts = append(opts, progressbar.OptionSetWriter(lines{w}), progressbar.OptionThrottle(10*time.Second),
			progressbar.OptionUseANSICodes(false))
	}
	return &Bar{bar: progressbar.NewOptions(max(total, 1), opts...), label: label, start: time.Now()}
}

// Update shows that done steps are finished, with a free-form status such as "loss 0.31 acc 89.2%".
func (b *Bar) Update(done int, status string) {
	if status != "" {
		b.bar.Describe(b.label + " " + status)
	}
	b.bar.Set(done)
}

// Elapsed is the time since the bar started.
func (b *Bar) Elapsed() time.Duration { return time.Since(b.start) }

// lines turns the bar's carriage-return redraws into one plain line per
// drawing, for outputs that are not terminals.
type lines struct{ w io.Writer }

func (l lines) Write(p []byte) (int, error) {
	s := strings.ReplaceAll(string(p), "\r", "")
	s = strings.ReplaceAll(s, "\033[2K", "")
	if s = strings.TrimSpace(s); s == "" {
		return len(p), nil
	}
	if _, err := fmt.Fprintln(l.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}
