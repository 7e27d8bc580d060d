// Package all is the explicit list of runbook's standard modules.
package all

import (
	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/modules/command"
	"github.com/runbook/runbook/modules/directory"
	"github.com/runbook/runbook/modules/file"
	ldapattribute "github.com/runbook/runbook/modules/ldap_attribute"
	pkg "github.com/runbook/runbook/modules/package"
	rediscluster "github.com/runbook/runbook/modules/redis_cluster"
	"github.com/runbook/runbook/modules/service"
	"github.com/runbook/runbook/modules/template"
	waitfor "github.com/runbook/runbook/modules/wait_for"
)

// Infos returns the descriptions of the standard modules, in the order of their documentation
// index.
func Infos() []engine.ModuleInfo {
	return []engine.ModuleInfo{
		// General-purpose modules.
		template.Info(),
		file.Info(),
		directory.Info(),
		command.Info(),
		pkg.Info(),
		service.Info(),
		waitfor.Info(),

		// Application modules.
		rediscluster.Info(),
		ldapattribute.Info(),
	}
}

// Registry returns a registry of the standard modules plus extra ones (tests, plugins built in by
// a fork). A name registered twice panics.
func Registry(extra ...engine.ModuleInfo) *engine.Registry {
	return engine.NewRegistry(append(Infos(), extra...)...)
}
