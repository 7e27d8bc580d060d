//go:build tools

package deps
import (
 _ "github.com/hashicorp/hcl/v2"
 _ "github.com/hashicorp/hcl/v2/gohcl"
 _ "github.com/hashicorp/hcl/v2/hclsyntax"
 _ "github.com/hashicorp/hcl/v2/hclwrite"
 _ "github.com/zclconf/go-cty/cty"
 _ "github.com/zclconf/go-cty/cty/function/stdlib"
 _ "golang.org/x/crypto/ssh"
 _ "golang.org/x/crypto/ssh/agent"
 _ "golang.org/x/crypto/ssh/knownhosts"
 _ "github.com/redis/go-redis/v9"
 _ "github.com/go-ldap/ldap/v3"
 _ "github.com/spf13/cobra"
 _ "github.com/rogpeppe/go-internal/testscript"
 _ "github.com/google/go-cmp/cmp"
 _ "github.com/pmezard/go-difflib/difflib"
 _ "golang.org/x/term"
 _ "github.com/agext/levenshtein"
)

