package engine

import (
	"fmt"
	"sort"
)

// Registry maps module names to their descriptions. It is built once, from an explicit list (see
// modules/all), and read-only afterwards: there is no package-level registry.
type Registry struct {
	mods map[string]ModuleInfo
}

// NewRegistry returns a registry of the given modules. A duplicate or unnamed module is a
// programmer error and panics.
func NewRegistry(infos ...ModuleInfo) *Registry {
	r := &Registry{mods: make(map[string]ModuleInfo, len(infos))}
	for _, m := range infos {
		if m.Name == "" || m.New == nil {
			panic("engine: module registered without a name or constructor")
		}
		if _, dup := r.mods[m.Name]; dup {
			panic(fmt.Sprintf("engine: module %q registered twice", m.Name))
		}
		r.mods[m.Name] = m
	}
	return r
}

// Lookup returns the module with the given name.
func (r *Registry) Lookup(name string) (ModuleInfo, bool) {
	m, ok := r.mods[name]
	return m, ok
}

// Names returns the registered module names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.mods))
	for n := range r.mods {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
