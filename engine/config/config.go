// Package config loads playbooks and inventories written in HCL: variables, locals, hosts, groups,
// tasks and handlers. Loading is two-phase (HCL's guide): the meta-arguments of a task are decoded
// here, its module block is kept as an hcl.Body and decoded per host against the module's own
// schema. Every error is an hcl.Diagnostic with its source range; all of them are reported at once.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/dag"
)

// Options say what to load.
type Options struct {
	// Playbook is the playbook file.
	Playbook string
	// Inventories are inventory files (host, group and defaults blocks), loaded after the playbook.
	Inventories []string
	// VarFiles are files of `name = value` lines; later files win.
	VarFiles []string
	// Vars are NAME=VALUE assignments from the command line; they win over files.
	Vars []string
	// Environ is the process environment, read for RUNBOOK_VAR_name (lowest precedence).
	Environ []string
	// Registry knows the modules tasks may use.
	Registry *engine.Registry
}

// Playbook is a loaded and validated playbook with its inventory.
type Playbook struct {
	// Dir is the playbook's directory; relative paths in it are resolved against it.
	Dir string
	// Parser holds every file read, for diagnostic snippets.
	Parser *hclparse.Parser
	// Variables are the declared input variables, by name.
	Variables map[string]*Variable
	// Values are the variables' final values.
	Values map[string]cty.Value
	// Locals are the evaluated locals.
	Locals map[string]cty.Value
	// Defaults are the connection defaults for every host.
	Defaults HostDefaults
	// Hosts are the inventory hosts in declaration order.
	Hosts []*Host
	// Groups are the inventory groups in declaration order.
	Groups []*Group
	// Tasks are the tasks in declaration order.
	Tasks []*Task
	// Handlers are the handlers in declaration order.
	Handlers []*Task
	// Graph orders the tasks (node names are task names).
	Graph *dag.Graph
	// Secrets holds the values of sensitive variables.
	Secrets *engine.Secrets

	// static caches, filled once the inventory is decoded (inventoryDone) and once the locals
	// are (localsDone): var, local, host and group are the same objects for every expression
	cacheMu       sync.Mutex
	inventoryDone bool
	localsDone    bool
	hostVals      map[string]cty.Value
	hostObj       cty.Value
	groupObj      cty.Value
	varObj        cty.Value
	localObj      cty.Value
	funcs         map[string]map[string]function.Function

	hostIndex  map[string]*Host
	groupIndex map[string]*Group
	taskIndex  map[string]*Task
	handlerIdx map[string]*Task
	registry   *engine.Registry
}

// Variable is a declared input variable.
type Variable struct {
	Name        string
	Description string
	Type        cty.Type
	Default     cty.Value // cty.NilVal when the variable is required
	Sensitive   bool
	Validations []*Validation
	DeclRange   hcl.Range
}

// Validation is a variable's validation rule.
type Validation struct {
	Condition    hcl.Expression
	ErrorMessage string
	DeclRange    hcl.Range
}

// HostDefaults are connection settings that apply to every host that does not set its own.
type HostDefaults struct {
	User            string
	Port            int
	PrivateKey      string
	KnownHosts      string
	HostKeyChecking string // "strict" (default), "accept-new", "off"
	SSHConfig       bool
	Jump            string

	userSet, portSet bool
}

// Host is an inventory host.
type Host struct {
	Name            string
	Address         string
	Port            int
	User            string
	PrivateKey      string
	KnownHosts      string
	HostKeyChecking string
	SSHConfig       bool
	Jump            string
	// UserSet and PortSet say whether user and port were written (in the host or the defaults
	// block) rather than defaulted, so that ~/.ssh/config may supply them (ssh_config = true).
	UserSet bool
	PortSet bool
	// Vars are the host's own vars merged over its groups' vars.
	Vars map[string]cty.Value
	// Groups are the names of the groups the host belongs to.
	Groups    []string
	DeclRange hcl.Range

	ownVars map[string]cty.Value
}

// Group is an inventory group.
type Group struct {
	Name      string
	Hosts     []string
	Vars      map[string]cty.Value
	DeclRange hcl.Range
}

// Task is a task or a handler.
type Task struct {
	// Name is the block label.
	Name string
	// Handler is true for handler blocks.
	Handler bool
	// On selects the hosts (nil: every host).
	On hcl.Expression
	// ForEach, When and Until are optional expressions (nil when absent).
	ForEach hcl.Expression
	When    hcl.Expression
	Until   hcl.Expression
	// DependsOn and Notify name other tasks and handlers.
	DependsOn []string
	Notify    []string
	// Refs are the tasks whose outputs the task's expressions read (task.NAME...), sorted.
	Refs    []string
	RunOnce bool
	Serial  int
	Retries int
	Delay   time.Duration
	// Module is the module of the task's single module block, and ModuleBody its body.
	Module      engine.ModuleInfo
	ModuleBody  hcl.Body
	ModuleRange hcl.Range
	// Dir is the directory of the file that declares the task.
	Dir       string
	DeclRange hcl.Range
}

// Host returns the named host.
func (p *Playbook) Host(name string) (*Host, bool) {
	h, ok := p.hostIndex[name]
	return h, ok
}

// Group returns the named group.
func (p *Playbook) Group(name string) (*Group, bool) {
	g, ok := p.groupIndex[name]
	return g, ok
}

// Task returns the named task.
func (p *Playbook) Task(name string) (*Task, bool) {
	t, ok := p.taskIndex[name]
	return t, ok
}

// Handler returns the named handler.
func (p *Playbook) Handler(name string) (*Task, bool) {
	t, ok := p.handlerIdx[name]
	return t, ok
}

// Registry returns the module registry the playbook was loaded with.
func (p *Playbook) Registry() *engine.Registry { return p.registry }

// Files returns the source of every file read, for diagnostic snippets.
func (p *Playbook) Files() map[string]*hcl.File { return p.Parser.Files() }

// Load reads, decodes and validates a playbook with its inventories and variables. Diagnostics
// include every problem found; when they have errors the playbook must not be run.
func Load(opts Options) (*Playbook, hcl.Diagnostics) {
	p := &Playbook{
		Parser:     hclparse.NewParser(),
		Variables:  map[string]*Variable{},
		Values:     map[string]cty.Value{},
		Locals:     map[string]cty.Value{},
		Secrets:    engine.NewSecrets(),
		hostIndex:  map[string]*Host{},
		groupIndex: map[string]*Group{},
		taskIndex:  map[string]*Task{},
		handlerIdx: map[string]*Task{},
		registry:   opts.Registry,
		Graph:      dag.New(),
	}
	if abs, err := filepath.Abs(opts.Playbook); err == nil {
		p.Dir = filepath.Dir(abs)
	}
	var diags hcl.Diagnostics
	var bodies []fileBody
	for i, path := range append([]string{opts.Playbook}, opts.Inventories...) {
		f, d := p.parse(path)
		diags = append(diags, d...)
		if f != nil {
			bodies = append(bodies, fileBody{path: path, body: f.Body, inventory: i > 0})
		}
	}
	if diags.HasErrors() {
		return p, diags
	}
	blocks, d := collectBlocks(bodies)
	diags = append(diags, d...)

	diags = append(diags, p.decodeVariables(blocks.variables)...)
	diags = append(diags, p.assignValues(opts)...)
	diags = append(diags, p.checkValidations()...)
	diags = append(diags, p.decodeInventory(blocks)...)
	p.inventoryDone = true
	diags = append(diags, p.decodeLocals(blocks.locals)...)
	p.localsDone = true
	diags = append(diags, p.decodeTasks(blocks.tasks, false)...)
	diags = append(diags, p.decodeTasks(blocks.handlers, true)...)
	refDiags, bad := p.checkReferences()
	diags = append(diags, refDiags...)
	if !diags.HasErrors() || len(bad) < len(p.Tasks)+len(p.Handlers) {
		diags = append(diags, p.checkInstances(bad)...)
	}
	return p, dedupe(diags)
}

// dedupe drops diagnostics that repeat an earlier one (same summary at the same place), as the
// module schema is checked both when a task is read and when it is expanded.
func dedupe(diags hcl.Diagnostics) hcl.Diagnostics {
	seen := map[string]bool{}
	out := diags[:0:0]
	for _, d := range diags {
		key := d.Summary
		if d.Subject != nil {
			key += "@" + d.Subject.String()
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, d)
	}
	return out
}

func (p *Playbook) parse(path string) (*hcl.File, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read file",
			Detail:   fmt.Sprintf("Reading %s failed: %s. Check the path and its permissions.", path, unwrapPathErr(err)),
		}}
	}
	return p.Parser.ParseHCL(src, path)
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
