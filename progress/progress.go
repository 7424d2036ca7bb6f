// Package progress is the one small interface long-running loops use to
// report how far they are; the CLI renders it as a bar on a terminal and
// stays silent otherwise (e.g. in CI logs).
package progress

import (
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Reporter receives progress of one long task.
type Reporter interface {
	// Start announces a task with a total number of steps (-1 if unknown).
	Start(task string, total int)
	// Add advances the current task by n steps.
	Add(n int)
	// Finish ends the current task.
	Finish()
}

// Nop is a Reporter that does nothing.
type Nop struct{}

func (Nop) Start(string, int) {}
func (Nop) Add(int)           {}
func (Nop) Finish()           {}

// Bar renders progress as a bar on stderr.
type Bar struct{ b *progressbar.ProgressBar }

func (p *Bar) Start(task string, total int) {
	p.b = progressbar.NewOptions(total, progressbar.OptionSetDescription(task),
		progressbar.OptionSetWriter(os.Stderr), progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(200e6))
}
func (p *Bar) Add(n int) {
	if p.b != nil {
		p.b.Add(n)
	}
}
func (p *Bar) Finish() {
	if p.b != nil {
		p.b.Finish()
		p.b = nil
	}
}

// ForTerminal returns a Bar when stderr is a terminal and CI is unset, else Nop.
func ForTerminal() Reporter {
	if os.Getenv("CI") == "" && term.IsTerminal(int(os.Stderr.Fd())) {
		return &Bar{}
	}
	return Nop{}
}

// Or returns r, or Nop when r is nil.
func Or(r Reporter) Reporter {
	if r == nil {
		return Nop{}
	}
	return r
}
