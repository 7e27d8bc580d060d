package redis_cluster

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAuthErr(t *testing.T) {
	tests := []struct {
		err  string
		want string // "" when the error is not an authentication failure
	}{
		{"node1:6379: INFO CLUSTER: NOAUTH Authentication required.",
			"node1:6379: authentication failed (NOAUTH): check the password given to redis_cluster (redis_password)"},
		{"node1:6379: INFO CLUSTER: WRONGPASS invalid username-password pair or user is disabled.",
			"node1:6379: authentication failed (WRONGPASS): check the password given to redis_cluster (redis_password)"},
		{"node1:6379: INFO CLUSTER: ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
			"node1:6379: authentication failed (a password was sent but the server has none): check the password given to redis_cluster (redis_password)"},
		{"node1:6379: INFO CLUSTER: ERR invalid password",
			"node1:6379: authentication failed (invalid password): check the password given to redis_cluster (redis_password)"},
		{"node1:6379: INFO CLUSTER: i/o timeout", ""},
	}
	for _, tt := range tests {
		err := authErr("node1:6379", errors.New(tt.err))
		if tt.want == "" {
			if errors.Is(err, errAuthFailed) || err.Error() != tt.err {
				t.Errorf("%q became %q", tt.err, err)
			}
			continue
		}
		if !errors.Is(err, errAuthFailed) || err.Error() != tt.want {
			t.Errorf("%q:\n got  %q\n want %q", tt.err, err, tt.want)
		}
	}
}

// TestAuthFailureIsNotUnreachable: an instance that refuses the password is reported as such,
// in the refusal, in the health lines and in the status problems.
func TestAuthFailureIsNotUnreachable(t *testing.T) {
	insts := grid(3, 3)
	obs := world{insts: insts, nodes: healthy3x3()}.observations(t)
	for _, i := range []int{0, 1, 2} {
		obs[i] = Observation{Err: authErr(insts[i].Name(), errors.New("INFO CLUSTER: WRONGPASS invalid username-password pair or user is disabled."))}
	}
	obs[8] = Observation{Err: errors.New("node3:6381: dial tcp: connect: connection refused")}
	top := Analyze(insts, obs)
	want := "1 of 9 instances is unreachable: node3:6381 (connection refused); " +
		"authentication failed on 3 of 9 instances: node1:6379,6380,6381 (WRONGPASS): check the password given to redis_cluster (redis_password)"
	if got := DescribeUnreachable(top); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	h := Health(top)
	wantHealth := []string{
		"node1:6379: authentication failed (WRONGPASS): check the password given to redis_cluster (redis_password)",
		"node1:6380: authentication failed (WRONGPASS): check the password given to redis_cluster (redis_password)",
		"node1:6381: authentication failed (WRONGPASS): check the password given to redis_cluster (redis_password)",
		"node3:6381 is unreachable",
	}
	if d := cmp.Diff(wantHealth, h[:4]); d != "" {
		t.Errorf("health (-want +got):\n%s", d)
	}
	if v := BuildView(top, 2); len(v.Problems) == 0 || v.Problems[0] != wantHealth[0] {
		t.Errorf("status problems %q, want first %q", v.Problems, wantHealth[0])
	}
}
