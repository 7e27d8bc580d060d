package ldapattribute

import (
	"strings"
	"testing"
)

// Vectors from the public test suite of Gluu's successor (Janssen's pycloudlib, which keeps Gluu's
// scheme): the encoded form of "secret" under two salts.
var gluuVectors = []struct {
	salt, plain, encoded string
}{
	{"2CG9qwCzH5haWXXuUIUe4wFT", "secret", "4rl2tJEQFkY="},
	{"7MEDWVFAG3DmakHRyjMqp5EE", "secret", "fHL54sT5qHk="},
}

func TestGluuEncryptKnownVectors(t *testing.T) {
	for _, v := range gluuVectors {
		t.Run(v.salt, func(t *testing.T) {
			got, err := gluuEncrypt(v.salt, v.plain)
			if err != nil {
				t.Fatal(err)
			}
			if got != v.encoded {
				t.Errorf("gluuEncrypt(%q) = %q, want %q", v.plain, got, v.encoded)
			}
			back, err := gluuDecrypt(v.salt, v.encoded)
			if err != nil {
				t.Fatal(err)
			}
			if back != v.plain {
				t.Errorf("gluuDecrypt(%q) = %q, want %q", v.encoded, back, v.plain)
			}
		})
	}
}

func TestGluuEncryptRoundTrip(t *testing.T) {
	salt := "abcdefghijklmnopqrstuvwxyz0123" // longer than 24: only the first 24 bytes count
	for _, plain := range []string{"", "a", "1234567", "12345678", "a longer Redis password: ünïcödé"} {
		enc, err := gluuEncrypt(salt, plain)
		if err != nil {
			t.Fatal(err)
		}
		if !looksGluuEncrypted(enc) {
			t.Errorf("%q does not look encrypted", enc)
		}
		same, err := gluuEncrypt(salt[:24], plain)
		if err != nil || same != enc {
			t.Errorf("salt beyond 24 bytes changed the result: %q vs %q (%v)", same, enc, err)
		}
		dec, err := gluuDecrypt(salt, enc)
		if err != nil {
			t.Fatal(err)
		}
		if dec != plain {
			t.Errorf("round trip of %q gave %q", plain, dec)
		}
	}
	enc, _ := gluuEncrypt(salt, "secret")
	if _, err := gluuDecrypt("ZZZZZZZZZZZZZZZZZZZZZZZZ", enc); err == nil {
		t.Error("decrypting with another salt succeeded")
	}
}

func TestParseSalt(t *testing.T) {
	tests := []struct {
		content, want, wantErr string
	}{
		{"encodeSalt = 2CG9qwCzH5haWXXuUIUe4wFT\n", "2CG9qwCzH5haWXXuUIUe4wFT", ""},
		{"# comment\nencodeSalt=7MEDWVFAG3DmakHRyjMqp5EE", "7MEDWVFAG3DmakHRyjMqp5EE", ""},
		{"encodeSalt = short\n", "", "needs at least 24"},
		{"something = else\n", "", "no encodeSalt"},
	}
	for _, tc := range tests {
		got, err := parseSalt(tc.content)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseSalt(%q) error = %v, want %q", tc.content, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseSalt(%q) = %q, %v; want %q", tc.content, got, err, tc.want)
		}
	}
}

func TestGluuWarnings(t *testing.T) {
	withPW := func(pw string) object {
		return object{{"redisConfiguration", object{{"password", pw}}}}
	}
	tests := []struct {
		name    string
		version string
		encrypt bool
		patch   object
		want    string
	}{
		{"3.1 with a password", "3.1", false, withPW("4rl2tJEQFkY="), "without a password"},
		{"3.1 with encrypt_password", "3.1", true, withPW("4rl2tJEQFkY="), "without a password"},
		{"3.1 without a password", "3.1", false, object{{"cacheProviderType", "REDIS"}}, ""},
		{"4 with a clear password", "", false, withPW("hunter2"), "does not look encrypted"},
		{"4 with an encrypted password", "4", false, withPW("4rl2tJEQFkY="), ""},
		{"4 with encrypt_password", "4", true, withPW("4rl2tJEQFkY="), ""},
		{"4 with an empty password", "4", false, withPW(""), ""},
		{"value mode", "3.1", false, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &LDAPAttribute{GluuVersion: tc.version}
			if tc.encrypt {
				m.EncryptPassword = &EncryptSpec{Value: "secret"}
			}
			got := strings.Join(m.gluuWarnings(tc.patch), "\n")
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("warnings = %q, want %q", got, tc.want)
			}
		})
	}
}
