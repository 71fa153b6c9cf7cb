package datasets

import (
	"fmt"
	"io"
	"time"
)

// TextProgress returns a LoadOptions.Progress callback that draws a one-line
// progress bar on w (a terminal: the line is rewritten with '\r'):
//
//	label [=========>          ]  4800/10000  48.0%  312 img/s
//
// where the rate is done / (time since the first call). It redraws at most
// every 200 ms, always on the first call and when done reaches total, and
// ends the line with '\n' then.
func TextProgress(w io.Writer, label string) func(done, total int) {
	const width = 30
	var start, last time.Time
	return func(done, total int) {
		now := time.Now()
		if start.IsZero() {
			start = now
		} else if done < total && now.Sub(last) < 200*time.Millisecond {
			return
		}
		last = now
		frac := 1.0
		if total > 0 {
			frac = float64(done) / float64(total)
		}
		bar := make([]byte, width)
		filled := int(frac * width)
		for i := range bar {
			switch {
			case i < filled:
				bar[i] = '='
			case i == filled && filled < width:
				bar[i] = '>'
			default:
				bar[i] = ' '
			}
		}
		rate := ""
		if el := now.Sub(start).Seconds(); el > 0 {
			rate = fmt.Sprintf("  %.0f img/s", float64(done)/el)
		}
		end := ""
		if done >= total {
			end = "\n"
		}
		fmt.Fprintf(w, "\r%s [%s] %*d/%d %5.1f%%%s%s", label, bar, len(fmt.Sprint(total)), done, total, 100*frac, rate, end)
	}
}
