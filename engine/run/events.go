package run

import (
	"fmt"
	"time"

	"github.com/runbook/runbook/engine"
)

// Status is the outcome of a task instance on one host.
type Status string

// The four statuses of a result.
const (
	StatusOK      Status = "ok"
	StatusChanged Status = "changed"
	StatusFailed  Status = "failed"
	StatusSkipped Status = "skipped"
)

// EventType says what an Event reports.
type EventType string

// Event types, in the order a run produces them.
const (
	EventStart    EventType = "start"    // the run begins: Hosts, Mode
	EventResult   EventType = "result"   // a task instance finished on a host
	EventChange   EventType = "change"   // a module made (or would make) a change
	EventLog      EventType = "log"      // a detail line (verbose)
	EventProgress EventType = "progress" // what a module is waiting for ("" clears)
	EventWarning  EventType = "warning"  // something the operator should know
	EventRecap    EventType = "recap"    // the run is over: counts and time
)

// Event is one thing that happened during a run. Every string in it is already redacted.
type Event struct {
	Type     EventType
	Time     time.Time
	Mode     Mode
	Task     string
	Host     string
	Status   Status
	Summary  string
	Changes  []engine.Change
	Duration time.Duration
	// Hosts is set on EventStart: the hosts of the run, in order.
	Hosts []string
	// Tasks is set on EventStart: the names of the tasks and handlers.
	Tasks []string
	// Recap is set on EventRecap.
	Recap *Recap
}

// Recap counts results over the run.
type Recap struct {
	OK, Changed, Failed, Skipped int
	PerHost                      map[string]*HostCount
	Hosts                        []string
	Duration                     time.Duration
}

// HostCount counts results of one host.
type HostCount struct {
	OK, Changed, Failed, Skipped int
	// Unreachable is true when the host could not be connected to, at the start or after its
	// connection was lost during the run (engine.UnreachableError).
	Unreachable bool
}

// Sink receives the events of a run. Calls are serialised by the runner.
type Sink interface {
	Event(Event)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(Event)

// Event implements Sink.
func (f SinkFunc) Event(e Event) { f(e) }

// plural returns "1 host", "3 hosts".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
