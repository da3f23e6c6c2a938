package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// progressBar draws "label [#####.....]  42%  12.3/29.0 MiB  5.1 MiB/s" on
// stderr when stderr is a terminal, at most ten times a second.
type progressBar struct {
	label       string
	enabled     bool
	start, last time.Time
	done, total int64
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newProgressBar(label string, quiet bool) *progressBar {
	return &progressBar{label: label, enabled: !quiet && isTerminal(os.Stderr), start: time.Now()}
}

func (b *progressBar) update(done, total int64) {
	b.done, b.total = done, total
	if !b.enabled || time.Since(b.last) < 100*time.Millisecond && done != total {
		return
	}
	b.last = time.Now()
	b.draw()
}

func (b *progressBar) draw() {
	const width = 30
	const mib = 1 << 20
	rate := float64(b.done) / mib / max(time.Since(b.start).Seconds(), 1e-3)
	if b.total <= 0 {
		fmt.Fprintf(os.Stderr, "\r%s  %.1f MiB  %.1f MiB/s ", b.label, float64(b.done)/mib, rate)
		return
	}
	filled := int(int64(width) * min(b.done, b.total) / b.total)
	fmt.Fprintf(os.Stderr, "\r%s [%s%s] %3d%%  %.1f/%.1f MiB  %.1f MiB/s ", b.label,
		strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		100*min(b.done, b.total)/b.total, float64(b.done)/mib, float64(b.total)/mib, rate)
}

// finish draws the final state and ends the line.
func (b *progressBar) finish(err error) {
	if !b.enabled || b.last.IsZero() {
		return
	}
	b.draw()
	if err != nil {
		fmt.Fprint(os.Stderr, " failed")
	}
	fmt.Fprintln(os.Stderr)
}
