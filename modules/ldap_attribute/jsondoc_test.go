package ldapattribute

import (
	"strings"
	"testing"
)

func TestMergeKeepsOtherFieldsAndOrder(t *testing.T) {
	tests := []struct {
		name, base, patch, want string
	}{
		{
			name:  "nested object merged, order kept, new key appended",
			base:  `{"b":1,"a":{"x":1,"y":[1,2]},"c":"s"}`,
			patch: `{"a":{"y":[3],"z":true}}`,
			want:  `{"b":1,"a":{"x":1,"y":[3],"z":true},"c":"s"}`,
		},
		{
			name:  "scalar replaced by object and object by scalar",
			base:  `{"a":1,"b":{"x":1}}`,
			patch: `{"a":{"k":"v"},"b":"flat"}`,
			want:  `{"a":{"k":"v"},"b":"flat"}`,
		},
		{
			name:  "null replaces",
			base:  `{"a":{"x":1},"b":2}`,
			patch: `{"a":null}`,
			want:  `{"a":null,"b":2}`,
		},
		{
			name:  "numbers and escapes kept as written",
			base:  `{"big":100000,"f":1.50,"u":"<&>é","e":1e3}`,
			patch: `{"new":60}`,
			want:  `{"big":100000,"f":1.50,"u":"<&>é","e":1e3,"new":60}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base, err := parseJSON(tc.base)
			if err != nil {
				t.Fatal(err)
			}
			patch, err := parseJSON(tc.patch)
			if err != nil {
				t.Fatal(err)
			}
			got := encodeJSON(merge(base, patch), false, "")
			if got != tc.want {
				t.Errorf("merge = %s, want %s", got, tc.want)
			}
			if again := encodeJSON(base, false, ""); again != strings.ReplaceAll(tc.base, " ", "") {
				t.Errorf("merge modified its base: %s", again)
			}
		})
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct {
		a, b  string
		equal bool
	}{
		{`{"a":1,"b":{"c":2,"d":3}}`, ` { "b" : {"d":3, "c":2}, "a":1 } `, true},
		{`{"a":[1,2]}`, `{"a":[2,1]}`, false},
		{`{"a":"1"}`, `{"a":1}`, false},
		{`{"a":1}`, `{"a":1,"b":null}`, false},
	}
	for _, tc := range tests {
		a, err := parseJSON(tc.a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := parseJSON(tc.b)
		if err != nil {
			t.Fatal(err)
		}
		if got := canonical(a) == canonical(b); got != tc.equal {
			t.Errorf("canonical(%s) == canonical(%s) is %v, want %v", tc.a, tc.b, got, tc.equal)
		}
	}
}

func TestParseJSONRejects(t *testing.T) {
	for _, s := range []string{"", "not json", `{"a":1} trailing`, `{"a":}`, "REDIS"} {
		if _, err := parseJSON(s); err == nil {
			t.Errorf("parseJSON(%q) succeeded", s)
		}
	}
}

func TestJSONDiffMasksPasswords(t *testing.T) {
	old, _ := parseJSON(`{"redisConfiguration":{"password":"old-secret","servers":"a:1"},"sentinelPassword":"s1","x":1}`)
	new, _ := parseJSON(`{"redisConfiguration":{"password":"new-secret","servers":"b:1"},"sentinelPassword":"s1","x":1}`)
	d := jsonDiff("attr", old, new, true)
	for _, secret := range []string{"old-secret", "new-secret", "s1"} {
		if strings.Contains(d, secret) {
			t.Errorf("diff shows %q:\n%s", secret, d)
		}
	}
	for _, want := range []string{`-    "password": "(sensitive)"`, `+    "password": "(sensitive, changed)"`, `-    "servers": "a:1"`, `+    "servers": "b:1"`, `   "sentinelPassword": "(sensitive)"`} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
}
