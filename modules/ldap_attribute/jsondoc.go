package ldapattribute

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/runbook/runbook/engine"
)

// A JSON document is held as: object (ordered members), []any, string, json.Number, bool or nil.
// Keeping the members' order and the numbers' text lets a merge rewrite a document changing only
// the keys it sets.

// object is a JSON object whose members keep their order.
type object []member

type member struct {
	key string
	val any
}

func (o object) get(key string) (any, bool) {
	for _, m := range o {
		if m.key == key {
			return m.val, true
		}
	}
	return nil, false
}

// parseJSON decodes one JSON value (and nothing after it).
func parseJSON(data string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty value")
		}
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := object{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, _ := kt.(string)
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				o = setMember(o, key, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return o, nil
		case '[':
			a := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return a, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return tok, nil // string, json.Number, bool, nil
	}
}

// setMember sets key in o (in place when present, appended otherwise).
func setMember(o object, key string, v any) object {
	for i := range o {
		if o[i].key == key {
			o[i].val = v
			return o
		}
	}
	return append(o, member{key, v})
}

// merge returns base with patch applied: objects are merged key by key, recursively; any other
// patch value replaces the base value. base is not modified.
func merge(base, patch any) any {
	po, ok := patch.(object)
	if !ok {
		return patch
	}
	bo, ok := base.(object)
	if !ok {
		bo = object{}
	}
	out := append(object(nil), bo...)
	for _, m := range po {
		old, _ := out.get(m.key)
		out = setMember(out, m.key, merge(old, m.val))
	}
	return out
}

// encodeJSON writes v as JSON: members in their order, or sorted by key when sorted; on one line
// when indent is empty.
func encodeJSON(v any, sorted bool, indent string) string {
	var b bytes.Buffer
	writeJSON(&b, v, sorted, indent, 0)
	return b.String()
}

func writeJSON(b *bytes.Buffer, v any, sorted bool, indent string, depth int) {
	newline := func(d int) {
		if indent != "" {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(indent, d))
		}
	}
	switch t := v.(type) {
	case object:
		if len(t) == 0 {
			b.WriteString("{}")
			return
		}
		ms := t
		if sorted {
			ms = append(object(nil), t...)
			sort.SliceStable(ms, func(i, j int) bool { return ms[i].key < ms[j].key })
		}
		b.WriteByte('{')
		for i, m := range ms {
			if i > 0 {
				b.WriteByte(',')
			}
			newline(depth + 1)
			writeString(b, m.key)
			b.WriteByte(':')
			if indent != "" {
				b.WriteByte(' ')
			}
			writeJSON(b, m.val, sorted, indent, depth+1)
		}
		newline(depth)
		b.WriteByte('}')
	case []any:
		if len(t) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			newline(depth + 1)
			writeJSON(b, e, sorted, indent, depth+1)
		}
		newline(depth)
		b.WriteByte(']')
	case string:
		writeString(b, t)
	case json.Number:
		b.WriteString(t.String())
	case bool:
		if t {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case nil:
		b.WriteString("null")
	default:
		panic(fmt.Sprintf("ldap_attribute: unexpected JSON value %T", v))
	}
}

func writeString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode adds a newline
}

// canonical returns v's canonical JSON: keys sorted, no insignificant space.
func canonical(v any) string { return encodeJSON(v, true, "") }

// sensitiveKey reports whether a JSON member holds a secret that diffs must not show.
func sensitiveKey(key string) bool { return strings.Contains(strings.ToLower(key), "password") }

// masked returns copies of old and new in which every string under a password-like key is
// replaced: by Redacted in old, and in new by Redacted when it equals old's value or by
// "(sensitive, changed)" when it differs, so a diff shows that a secret changed but not the secret.
func masked(old, new any) (any, any) {
	oo, ook := old.(object)
	no, nok := new.(object)
	if !ook || !nok {
		return maskAll(old), maskAll(new)
	}
	mo := make(object, 0, len(oo))
	mn := make(object, 0, len(no))
	for _, m := range oo {
		nv, inNew := no.get(m.key)
		switch {
		case sensitiveKey(m.key) && !isContainer(m.val):
			mo = append(mo, member{m.key, redactedValue(m.val)})
		case inNew:
			a, _ := masked(m.val, nv)
			mo = append(mo, member{m.key, a})
		default:
			mo = append(mo, member{m.key, maskAll(m.val)})
		}
	}
	for _, m := range no {
		ov, inOld := oo.get(m.key)
		switch {
		case sensitiveKey(m.key) && !isContainer(m.val):
			if inOld && canonical(ov) == canonical(m.val) {
				mn = append(mn, member{m.key, redactedValue(m.val)})
			} else {
				mn = append(mn, member{m.key, redactedChanged(m.val)})
			}
		case inOld:
			_, b := masked(ov, m.val)
			mn = append(mn, member{m.key, b})
		default:
			mn = append(mn, member{m.key, maskAll(m.val)})
		}
	}
	return mo, mn
}

func maskAll(v any) any {
	switch t := v.(type) {
	case object:
		out := make(object, 0, len(t))
		for _, m := range t {
			if sensitiveKey(m.key) && !isContainer(m.val) {
				out = append(out, member{m.key, redactedValue(m.val)})
			} else {
				out = append(out, member{m.key, maskAll(m.val)})
			}
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = maskAll(e)
		}
		return out
	}
	return v
}

func isContainer(v any) bool {
	switch v.(type) {
	case object, []any:
		return true
	}
	return false
}

// redactedValue hides a secret but keeps null and "" visible (they are not secrets).
func redactedValue(v any) any {
	if v == nil || v == "" {
		return v
	}
	return engine.Redacted
}

func redactedChanged(v any) any {
	if v == nil || v == "" {
		return v
	}
	return strings.TrimSuffix(engine.Redacted, ")") + ", changed)"
}

// jsonDiff returns a unified diff of the pretty-printed canonical forms of old and new, with
// password-like fields masked. old may be nil when the attribute did not exist.
func jsonDiff(name string, old, new any, oldExists bool) string {
	mo, mn := masked(old, new)
	a := ""
	if oldExists {
		a = encodeJSON(mo, true, "  ") + "\n"
	}
	b := encodeJSON(mn, true, "  ") + "\n"
	return textDiff(name, a, b)
}

func textDiff(name, a, b string) string {
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        difflib.SplitLines(a),
		B:        difflib.SplitLines(b),
		FromFile: name + " (directory)",
		ToFile:   name + " (wanted)",
		Context:  3,
	})
	if err != nil {
		return ""
	}
	return d
}
