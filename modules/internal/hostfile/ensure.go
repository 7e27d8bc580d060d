package hostfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
)

// EnsureFile converges the regular file at path to content and the managed attributes: one probe,
// then (only when the sha256 computed on the host differs) a read of the old content for the diff
// and an atomic upload, or a fix of the attributes alone when only they drifted. Unmanaged owner
// and group are kept on a rewrite. Every mutation goes through t.Change.
func EnsureFile(ctx context.Context, t *engine.Target, path string, content []byte, a Attrs) (engine.Outcome, error) {
	c := t.Conn()
	st, err := Probe(ctx, c, path)
	if err != nil {
		return engine.Outcome{}, err
	}
	sum := sha256.Sum256(content)
	want := hex.EncodeToString(sum[:])
	out := engine.Outcome{Outputs: map[string]cty.Value{
		"path":   cty.StringVal(path),
		"sha256": cty.StringVal(want),
	}}
	spec := engine.FileSpec{Path: path, Content: content, Mode: a.Mode, Owner: a.Owner, Group: a.Group}
	upload := func(ctx context.Context) error { return engine.WriteFile(ctx, c, spec) }

	switch st.Kind {
	case Directory:
		return out, fmt.Errorf("%s is a directory on the host; refusing to replace it with a file", path)
	case Other:
		return out, fmt.Errorf("%s exists on the host and is not a regular file", path)
	case Absent:
		ch := engine.Change{Summary: "create " + path, Diff: Diff(path, nil, false, content), Writes: []string{path}}
		if err := t.Change(ctx, ch, upload); err != nil {
			return out, err
		}
		out.Summary = Did(t, "created "+path, "will create "+path)
		return out, nil
	}

	if st.SHA256 != want {
		var old []byte
		if NeedsContent(st) {
			if old, err = Read(ctx, c, path); err != nil {
				return out, err
			}
		}
		diff := Diff(path, old, true, content)
		if old == nil {
			diff = fmt.Sprintf("%s: content changes (%d -> %d bytes)", path, st.Size, len(content))
		}
		// Keep what is not managed as it was: the upload replaces the file.
		if spec.Owner == "" {
			spec.Owner = st.UID
		}
		if spec.Group == "" {
			spec.Group = st.GID
		}
		summary := "update " + path
		if d := a.Drift(st); len(d) > 0 {
			summary += " (" + strings.Join(d, ", ") + ")"
		}
		if err := t.Change(ctx, engine.Change{Summary: summary, Diff: diff, Writes: []string{path}}, upload); err != nil {
			return out, err
		}
		out.Summary = Did(t, "updated "+path, "will update "+path)
		return out, nil
	}

	if fixed, err := FixDrift(ctx, t, path, st, a); err != nil || fixed {
		out.Summary = Did(t, "fixed attributes of "+path, "will fix attributes of "+path)
		return out, err
	}
	out.Summary = path + " is up to date"
	return out, nil
}

// FixDrift sets the managed attributes of path when st shows they drifted, and reports whether
// there was anything to fix.
func FixDrift(ctx context.Context, t *engine.Target, path string, st State, a Attrs) (bool, error) {
	d := a.Drift(st)
	if len(d) == 0 {
		return false, nil
	}
	ch := engine.Change{Summary: "set " + strings.Join(d, ", ") + " on " + path, Writes: []string{path}}
	return true, t.Change(ctx, ch, a.Fix(t.Conn(), path))
}

// Did returns applied in apply mode and planned in plan mode, for an Outcome summary.
func Did(t *engine.Target, applied, planned string) string {
	if t.DryRun() {
		return planned
	}
	return applied
}
