// Package reliability holds the report's row: what the fault tests of package playbooks write,
// one JSON object a line, to the file named by RUNBOOK_RELIABILITY_OUT, and what
// cmd/reliability-report renders. The JSON names are the contract between the two.
package reliability

// Row is one fault scenario and what came of it.
type Row struct {
	Scenario     string  `json:"scenario"`
	Fault        string  `json:"fault"`
	Recovery     string  `json:"recovery"`
	FaultRun     string  `json:"fault_run"`
	Reapply      string  `json:"reapply"`
	NoData       bool    `json:"no_data,omitempty"`
	Keys         int     `json:"keys"`
	KeysLost     int     `json:"keys_lost"`
	ClientOps    int     `json:"client_ops"`
	ClientErrors int     `json:"client_errors"`
	WrongReads   int     `json:"client_wrong_reads"`
	FirstError   string  `json:"client_first_error,omitempty"`
	ConvergeSec  float64 `json:"converge_seconds"`
	Passed       bool    `json:"passed"`
}
