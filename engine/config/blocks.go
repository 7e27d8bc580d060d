package config

import (
	"github.com/hashicorp/hcl/v2"
)

type fileBody struct {
	path      string
	body      hcl.Body
	inventory bool
}

type located struct {
	block *hcl.Block
	dir   string
}

type topBlocks struct {
	variables []*hcl.Block
	locals    []*hcl.Block
	defaults  []*hcl.Block
	hosts     []*hcl.Block
	groups    []*hcl.Block
	tasks     []located
	handlers  []located
}

var playbookSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "defaults"},
		{Type: "host", LabelNames: []string{"name"}},
		{Type: "group", LabelNames: []string{"name"}},
		{Type: "task", LabelNames: []string{"name"}},
		{Type: "handler", LabelNames: []string{"name"}},
	},
}

var inventorySchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "defaults"},
		{Type: "host", LabelNames: []string{"name"}},
		{Type: "group", LabelNames: []string{"name"}},
	},
}

func collectBlocks(files []fileBody) (topBlocks, hcl.Diagnostics) {
	var out topBlocks
	var diags hcl.Diagnostics
	for _, f := range files {
		schema := playbookSchema
		if f.inventory {
			schema = inventorySchema
		}
		content, d := f.body.Content(schema)
		diags = append(diags, d...)
		if content == nil {
			continue
		}
		dir := dirOf(f.path)
		for _, b := range content.Blocks {
			switch b.Type {
			case "variable":
				out.variables = append(out.variables, b)
			case "locals":
				out.locals = append(out.locals, b)
			case "defaults":
				out.defaults = append(out.defaults, b)
			case "host":
				out.hosts = append(out.hosts, b)
			case "group":
				out.groups = append(out.groups, b)
			case "task":
				out.tasks = append(out.tasks, located{b, dir})
			case "handler":
				out.handlers = append(out.handlers, located{b, dir})
			}
		}
	}
	return out, diags
}
