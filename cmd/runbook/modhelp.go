package main

import (
	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/docgen"
)

// moduleHelp is the text of `runbook module NAME`, generated from the module's own schema.
func moduleHelp(info engine.ModuleInfo) string {
	s, err := docgen.Help(info)
	if err != nil {
		return info.Name + ": " + info.Summary + "\n"
	}
	return s
}
