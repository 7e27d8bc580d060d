package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/term"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/run"
)

const (
	ansiReset  = "\033[0m"
	ansiBold   = "\033[1m"
	ansiRed    = "\033[31m"
	ansiGreen  = "\033[32m"
	ansiYellow = "\033[33m"
	ansiCyan   = "\033[36m"
	ansiDim    = "\033[2m"
)

func isatty(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// isTerminal reports whether w is a terminal that should get colours (NO_COLOR unset).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return isatty(f)
}

// humanUI prints a line per task and host, the planned changes with their diffs, a live progress
// line on a terminal, and a recap.
type humanUI struct {
	w        io.Writer
	mode     run.Mode
	playbook string
	verbose  bool
	color    bool
	progress bool // a progress line is on screen
	taskW    int
	hostW    int
}

func newHumanUI(w io.Writer, mode run.Mode, playbook string, verbose bool) *humanUI {
	return &humanUI{w: w, mode: mode, playbook: playbook, verbose: verbose, color: isTerminal(w), taskW: 16, hostW: 6}
}

func (u *humanUI) c(code, s string) string {
	if !u.color {
		return s
	}
	return code + s + ansiReset
}

func (u *humanUI) clearProgress() {
	if u.progress {
		fmt.Fprint(u.w, "\r\033[K")
		u.progress = false
	}
}

// Event implements run.Sink.
func (u *humanUI) Event(e run.Event) {
	switch e.Type {
	case run.EventStart:
		for _, h := range e.Hosts {
			if len(h) > u.hostW {
				u.hostW = len(h)
			}
		}
		for _, t := range e.Tasks {
			// room for a for_each key such as [a] or [etc]
			if len(t)+5 > u.taskW {
				u.taskW = len(t) + 5
			}
		}
		verb := "Applying"
		if u.mode == run.Plan {
			verb = "Planning"
		}
		fmt.Fprintf(u.w, "%s %s on %d host(s)\n", verb, u.playbook, len(e.Hosts))
	case run.EventProgress:
		if !u.color {
			return
		}
		u.clearProgress()
		if e.Summary != "" {
			fmt.Fprintf(u.w, "%s", u.c(ansiDim, fmt.Sprintf("… %s %s: %s", e.Host, e.Task, e.Summary)))
			u.progress = true
		}
	case run.EventLog:
		if u.verbose {
			u.clearProgress()
			if e.Host == "" {
				fmt.Fprintf(u.w, "  %s\n", u.c(ansiDim, e.Summary))
			} else if e.Task == "" {
				fmt.Fprintf(u.w, "  %s: %s\n", e.Host, u.c(ansiDim, e.Summary))
			} else {
				fmt.Fprintf(u.w, "  %s %s: %s\n", e.Host, e.Task, u.c(ansiDim, e.Summary))
			}
		}
	case run.EventWarning:
		u.clearProgress()
		where := strings.TrimSpace(e.Host + " " + e.Task)
		if where != "" {
			where += ": "
		}
		fmt.Fprintf(u.w, "%s %s%s\n", u.c(ansiYellow, "warning:"), where, e.Summary)
	case run.EventResult:
		u.clearProgress()
		u.result(e)
	case run.EventRecap:
		u.clearProgress()
		u.recap(e.Recap)
	}
}

func (u *humanUI) result(e run.Event) {
	if len(e.Task) > u.taskW {
		u.taskW = len(e.Task)
	}
	status := string(e.Status)
	if u.mode == run.Plan && e.Status == run.StatusChanged {
		status = "change"
	}
	var code string
	switch e.Status {
	case run.StatusOK:
		code = ansiGreen
	case run.StatusChanged:
		code = ansiYellow
	case run.StatusFailed:
		code = ansiRed
	case run.StatusSkipped:
		code = ansiCyan
	}
	fmt.Fprintf(u.w, "%-*s  %-*s  %s  %s\n", u.hostW, e.Host, u.taskW, e.Task, u.c(code, fmt.Sprintf("%-7s", status)), e.Summary)
	if e.Status != run.StatusChanged && e.Status != run.StatusFailed {
		return
	}
	if u.mode == run.Plan || u.verbose {
		for _, ch := range e.Changes {
			prefix := "  ~ "
			if u.mode == run.Apply {
				prefix = "  ✓ "
			}
			if len(e.Changes) > 1 || u.mode == run.Apply {
				fmt.Fprintf(u.w, "%s%s\n", u.c(code, prefix), ch.Summary)
			}
			if ch.Diff != "" && u.mode == run.Plan {
				for _, line := range strings.Split(strings.TrimRight(ch.Diff, "\n"), "\n") {
					lc := ""
					switch {
					case strings.HasPrefix(line, "+") && !strings.HasPrefix(line, "+++"):
						lc = ansiGreen
					case strings.HasPrefix(line, "-") && !strings.HasPrefix(line, "---"):
						lc = ansiRed
					}
					if lc != "" {
						line = u.c(lc, line)
					}
					fmt.Fprintf(u.w, "      %s\n", line)
				}
			}
		}
	}
}

func (u *humanUI) recap(rc *run.Recap) {
	if rc == nil {
		return
	}
	fmt.Fprintln(u.w)
	if u.mode == run.Plan {
		fmt.Fprintf(u.w, "%s %d to change, %d unchanged, %d skipped, %d failed on %d host(s).\n",
			u.c(ansiBold, "Plan:"), rc.Changed, rc.OK, rc.Skipped, rc.Failed, len(rc.Hosts))
	}
	fmt.Fprintf(u.w, "%s ok=%d changed=%d failed=%d skipped=%d in %s\n", u.c(ansiBold, "RECAP"), rc.OK, rc.Changed, rc.Failed, rc.Skipped, rc.Duration.Round(time.Millisecond))
	for _, h := range rc.Hosts {
		c := rc.PerHost[h]
		if c == nil {
			continue
		}
		line := fmt.Sprintf("  %-*s  ok=%-3d changed=%-3d failed=%-3d skipped=%d", u.hostW, h, c.OK, c.Changed, c.Failed, c.Skipped)
		if c.Unreachable {
			line += "  (unreachable)"
		}
		if c.Failed > 0 {
			line = u.c(ansiRed, line)
		}
		fmt.Fprintln(u.w, line)
	}
}

// jsonUI prints one JSON object per line.
type jsonUI struct{ w io.Writer }

type jsonChange struct {
	Summary string `json:"summary"`
	Diff    string `json:"diff,omitempty"`
}

// Event implements run.Sink.
func (j *jsonUI) Event(e run.Event) {
	switch e.Type {
	case run.EventStart:
		writeJSON(j.w, struct {
			Type  string   `json:"type"`
			Mode  string   `json:"mode"`
			Hosts []string `json:"hosts"`
		}{"start", string(e.Mode), e.Hosts})
	case run.EventResult:
		obj := struct {
			Type       string       `json:"type"`
			Task       string       `json:"task"`
			Host       string       `json:"host"`
			Status     string       `json:"status"`
			Summary    string       `json:"summary"`
			DurationMS int64        `json:"duration_ms"`
			Changes    []jsonChange `json:"changes,omitempty"`
		}{"result", e.Task, e.Host, string(e.Status), e.Summary, e.Duration.Milliseconds(), changesJSON(e.Changes)}
		writeJSON(j.w, obj)
	case run.EventWarning:
		writeJSON(j.w, map[string]any{"type": "warning", "host": e.Host, "task": e.Task, "message": e.Summary})
	case run.EventRecap:
		rc := e.Recap
		type hostJSON struct {
			OK          int  `json:"ok"`
			Changed     int  `json:"changed"`
			Failed      int  `json:"failed"`
			Skipped     int  `json:"skipped"`
			Unreachable bool `json:"unreachable"`
		}
		hosts := map[string]hostJSON{}
		for h, c := range rc.PerHost {
			hosts[h] = hostJSON{c.OK, c.Changed, c.Failed, c.Skipped, c.Unreachable}
		}
		writeJSON(j.w, struct {
			Type       string              `json:"type"`
			OK         int                 `json:"ok"`
			Changed    int                 `json:"changed"`
			Failed     int                 `json:"failed"`
			Skipped    int                 `json:"skipped"`
			DurationMS int64               `json:"duration_ms"`
			Mode       string              `json:"mode"`
			Hosts      map[string]hostJSON `json:"hosts"`
		}{"recap", rc.OK, rc.Changed, rc.Failed, rc.Skipped, rc.Duration.Milliseconds(), string(e.Mode), hosts})
	}
}

func changesJSON(cs []engine.Change) []jsonChange {
	out := make([]jsonChange, 0, len(cs))
	for _, c := range cs {
		out = append(out, jsonChange{Summary: c.Summary, Diff: c.Diff})
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func writeJSON(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"type": "error", "message": err.Error()})
	}
	w.Write(append(b, '\n'))
}

func diagJSON(d *hcl.Diagnostic, s *engine.Secrets) map[string]any {
	sev := "error"
	if d.Severity == hcl.DiagWarning {
		sev = "warning"
	}
	obj := map[string]any{"type": "diagnostic", "severity": sev, "summary": s.Redact(d.Summary), "detail": s.Redact(d.Detail)}
	if d.Subject != nil {
		obj["file"] = d.Subject.Filename
		obj["line"] = d.Subject.Start.Line
		obj["column"] = d.Subject.Start.Column
	}
	return obj
}

// redactWriter redacts secrets from everything written through it.
type redactWriter struct {
	w io.Writer
	s *engine.Secrets
}

func (r redactWriter) Write(p []byte) (int, error) {
	if r.s == nil {
		return r.w.Write(p)
	}
	if _, err := io.WriteString(r.w, r.s.Redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
