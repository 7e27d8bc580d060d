package config

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

var connAttrs = []hcl.AttributeSchema{
	{Name: "user"},
	{Name: "port"},
	{Name: "private_key"},
	{Name: "known_hosts"},
	{Name: "host_key_checking"},
	{Name: "ssh_config"},
	{Name: "jump"},
}

var defaultsSchema = &hcl.BodySchema{Attributes: connAttrs}

var hostSchema = &hcl.BodySchema{Attributes: append([]hcl.AttributeSchema{
	{Name: "address", Required: true},
	{Name: "vars"},
}, connAttrs...)}

var groupSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "hosts", Required: true},
	{Name: "vars"},
}}

// connSettings is the shared part of defaults and host blocks.
type connSettings struct {
	user, privateKey, knownHosts, hostKeyChecking, jump *string
	port                                                *int
	sshConfig                                           *bool
}

// decodeConn decodes the connection settings of a defaults or host block. Relative key and
// known_hosts paths are resolved against dir, the directory of the file that declares them.
func (p *Playbook) decodeConn(content *hcl.BodyContent, ctx *hcl.EvalContext, dir string) (connSettings, hcl.Diagnostics) {
	var cs connSettings
	var diags hcl.Diagnostics
	str := func(name string) *string {
		a, ok := content.Attributes[name]
		if !ok {
			return nil
		}
		var s string
		d := decodeString(a, ctx, &s)
		diags = append(diags, d...)
		if d.HasErrors() {
			return nil
		}
		return &s
	}
	cs.user = str("user")
	cs.privateKey = localPath(str("private_key"), dir)
	cs.knownHosts = localPath(str("known_hosts"), dir)
	cs.hostKeyChecking = str("host_key_checking")
	if cs.hostKeyChecking != nil {
		switch *cs.hostKeyChecking {
		case "strict", "accept-new", "off":
		default:
			a := content.Attributes["host_key_checking"]
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid host_key_checking",
				Detail: `host_key_checking must be "strict" (the default: the key must be in known_hosts), "accept-new" (record unknown keys, refuse changed ones) or "off".`, Subject: a.Expr.Range().Ptr()})
			cs.hostKeyChecking = nil
		}
	}
	if a, ok := content.Attributes["port"]; ok {
		val, d := a.Expr.Value(ctx)
		diags = append(diags, d...)
		if !d.HasErrors() {
			var port int
			nv, err := convert.Convert(val, cty.Number)
			if err != nil || nv.IsNull() || !nv.IsKnown() {
				diags = append(diags, typeErr(a, "a number"))
			} else if bf := nv.AsBigFloat(); !bf.IsInt() {
				diags = append(diags, typeErr(a, "a whole number"))
			} else {
				i, _ := bf.Int64()
				port = int(i)
				if port < 1 || port > 65535 {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid port", Detail: fmt.Sprintf("Port %d is out of range 1-65535.", port), Subject: a.Expr.Range().Ptr()})
				} else {
					cs.port = &port
				}
			}
		}
	}
	if a, ok := content.Attributes["ssh_config"]; ok {
		val, d := a.Expr.Value(ctx)
		diags = append(diags, d...)
		if bv, err := convert.Convert(val, cty.Bool); !d.HasErrors() && (err != nil || bv.IsNull()) {
			diags = append(diags, typeErr(a, "a bool"))
		} else if !d.HasErrors() {
			b := bv.True()
			cs.sshConfig = &b
		}
	}
	if a, ok := content.Attributes["jump"]; ok {
		tr, d := hcl.AbsTraversalForExpr(a.Expr)
		if d.HasErrors() || len(tr) != 2 || tr.RootName() != "host" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid jump host",
				Detail: "jump must be a reference to a host, like host.bastion.", Subject: a.Expr.Range().Ptr()})
		} else {
			name := attrName(tr[1])
			cs.jump = &name
		}
	}
	return cs, diags
}

func (p *Playbook) decodeInventory(blocks topBlocks) hcl.Diagnostics {
	var diags hcl.Diagnostics
	varCtx := p.evalContext(nil, false)
	p.Defaults = HostDefaults{User: "root", Port: 22, HostKeyChecking: "strict"}
	for i, b := range blocks.defaults {
		if i > 0 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate defaults block",
				Detail: fmt.Sprintf("Only one defaults block is allowed; the first is at %s. Merge them.", blocks.defaults[0].DefRange), Subject: b.DefRange.Ptr()})
			continue
		}
		content, d := b.Body.Content(defaultsSchema)
		diags = append(diags, d...)
		cs, d := p.decodeConn(content, varCtx, dirOf(b.DefRange.Filename))
		diags = append(diags, d...)
		apply(&p.Defaults.User, cs.user)
		p.Defaults.userSet = cs.user != nil
		p.Defaults.portSet = cs.port != nil
		apply(&p.Defaults.PrivateKey, cs.privateKey)
		apply(&p.Defaults.KnownHosts, cs.knownHosts)
		apply(&p.Defaults.HostKeyChecking, cs.hostKeyChecking)
		apply(&p.Defaults.Jump, cs.jump)
		apply(&p.Defaults.Port, cs.port)
		apply(&p.Defaults.SSHConfig, cs.sshConfig)
	}
	for _, b := range blocks.hosts {
		name := b.Labels[0]
		if prev, ok := p.hostIndex[name]; ok {
			diags = append(diags, duplicate("host", name, b, prev.DeclRange))
			continue
		}
		h := &Host{Name: name, DeclRange: b.DefRange, User: p.Defaults.User, Port: p.Defaults.Port,
			PrivateKey: p.Defaults.PrivateKey, KnownHosts: p.Defaults.KnownHosts, HostKeyChecking: p.Defaults.HostKeyChecking,
			SSHConfig: p.Defaults.SSHConfig, Jump: p.Defaults.Jump, ownVars: map[string]cty.Value{},
			UserSet: p.Defaults.userSet, PortSet: p.Defaults.portSet}
		content, d := b.Body.Content(hostSchema)
		diags = append(diags, d...)
		if content == nil {
			continue
		}
		if a, ok := content.Attributes["address"]; ok {
			d := decodeString(a, varCtx, &h.Address)
			diags = append(diags, d...)
			if h.Address == "" && !d.HasErrors() {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Empty host address",
					Detail: fmt.Sprintf("Host %q needs an address (an IP or a DNS name).", name), Subject: a.Expr.Range().Ptr()})
			}
		}
		cs, d := p.decodeConn(content, varCtx, dirOf(b.DefRange.Filename))
		diags = append(diags, d...)
		apply(&h.User, cs.user)
		h.UserSet = h.UserSet || cs.user != nil
		h.PortSet = h.PortSet || cs.port != nil
		apply(&h.PrivateKey, cs.privateKey)
		apply(&h.KnownHosts, cs.knownHosts)
		apply(&h.HostKeyChecking, cs.hostKeyChecking)
		apply(&h.Jump, cs.jump)
		apply(&h.Port, cs.port)
		apply(&h.SSHConfig, cs.sshConfig)
		if a, ok := content.Attributes["vars"]; ok {
			m, d := decodeVars(a, varCtx)
			diags = append(diags, d...)
			h.ownVars = m
		}
		p.Hosts = append(p.Hosts, h)
		p.hostIndex[name] = h
	}
	for _, h := range p.Hosts {
		if h.Jump != "" {
			if _, ok := p.hostIndex[h.Jump]; !ok || h.Jump == h.Name {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown jump host",
					Detail: fmt.Sprintf("Host %q jumps through %q, which is not a host of the inventory.%s", h.Name, h.Jump, didYouMean(h.Jump, p.hostNames())), Subject: h.DeclRange.Ptr()})
			}
		}
	}
	hostCtx := p.evalContext(nil, false)
	for _, b := range blocks.groups {
		name := b.Labels[0]
		if prev, ok := p.groupIndex[name]; ok {
			diags = append(diags, duplicate("group", name, b, prev.DeclRange))
			continue
		}
		g := &Group{Name: name, DeclRange: b.DefRange, Vars: map[string]cty.Value{}}
		content, d := b.Body.Content(groupSchema)
		diags = append(diags, d...)
		if content == nil {
			continue
		}
		if a, ok := content.Attributes["hosts"]; ok {
			d := p.checkTraversals(a.Expr, refScope{})
			diags = append(diags, d...)
			if !d.HasErrors() {
				names, d := p.hostsOf(a.Expr, hostCtx)
				diags = append(diags, d...)
				g.Hosts = names
			}
		}
		if a, ok := content.Attributes["vars"]; ok {
			m, d := decodeVars(a, varCtx)
			diags = append(diags, d...)
			g.Vars = m
		}
		p.Groups = append(p.Groups, g)
		p.groupIndex[name] = g
	}
	// merge vars: groups in declaration order, then the host's own
	for _, h := range p.Hosts {
		h.Vars = map[string]cty.Value{}
		for _, g := range p.Groups {
			if contains(g.Hosts, h.Name) {
				h.Groups = append(h.Groups, g.Name)
				for k, v := range g.Vars {
					h.Vars[k] = v
				}
			}
		}
		for k, v := range h.ownVars {
			h.Vars[k] = v
		}
	}
	return diags
}

// hostsOf evaluates an expression that selects hosts: a host, a group, a host name, or a list of
// those. It returns host names in order, without duplicates.
func (p *Playbook) hostsOf(expr hcl.Expression, ctx *hcl.EvalContext) ([]string, hcl.Diagnostics) {
	val, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	var names []string
	seen := map[string]bool{}
	var add func(v cty.Value) bool
	add = func(v cty.Value) bool {
		if v.IsNull() || !v.IsKnown() {
			return false
		}
		ty := v.Type()
		switch {
		case ty == cty.String:
			name := v.AsString()
			if _, ok := p.hostIndex[name]; !ok {
				if g, ok := p.groupIndex[name]; ok {
					for _, h := range g.Hosts {
						if !seen[h] {
							seen[h] = true
							names = append(names, h)
						}
					}
					return true
				}
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown host",
					Detail: fmt.Sprintf("%q is neither a host nor a group of the inventory.%s", name, didYouMean(name, append(p.hostNames(), p.groupNames()...))), Subject: expr.Range().Ptr()})
				return true
			}
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
			return true
		case ty.IsObjectType() && ty.HasAttribute("kind") && ty.HasAttribute("name"):
			kind := v.GetAttr("kind").AsString()
			if kind == "group" {
				for it := v.GetAttr("hosts").ElementIterator(); it.Next(); {
					_, hv := it.Element()
					add(hv)
				}
				return true
			}
			return add(v.GetAttr("name"))
		case ty.IsListType() || ty.IsTupleType() || ty.IsSetType():
			for it := v.ElementIterator(); it.Next(); {
				_, ev := it.Element()
				if !add(ev) {
					return false
				}
			}
			return true
		}
		return false
	}
	if !add(val) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid host selection",
			Detail: "Expected a host (host.NAME), a group (group.NAME), a host name, or a list of them.", Subject: expr.Range().Ptr()})
	}
	return names, diags
}

func decodeVars(a *hcl.Attribute, ctx *hcl.EvalContext) (map[string]cty.Value, hcl.Diagnostics) {
	val, diags := a.Expr.Value(ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	if val.IsNull() {
		return map[string]cty.Value{}, nil
	}
	if !val.Type().IsObjectType() && !val.Type().IsMapType() {
		return nil, hcl.Diagnostics{typeErr(a, "an object, like { zone = \"a\" }")}
	}
	return val.AsValueMap(), nil
}

func (p *Playbook) hostNames() []string {
	out := make([]string, len(p.Hosts))
	for i, h := range p.Hosts {
		out[i] = h.Name
	}
	return out
}

func (p *Playbook) groupNames() []string {
	out := make([]string, len(p.Groups))
	for i, g := range p.Groups {
		out[i] = g.Name
	}
	return out
}

// localPath resolves a relative path (not ~/...) against dir.
func localPath(p *string, dir string) *string {
	if p == nil || *p == "" || filepath.IsAbs(*p) || strings.HasPrefix(*p, "~") {
		return p
	}
	abs := filepath.Join(dir, *p)
	return &abs
}

func apply[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
