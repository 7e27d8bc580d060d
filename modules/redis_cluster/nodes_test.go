package redis_cluster

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// seedSample is the CLUSTER NODES output printed in the users' manual procedure (addresses were
// removed there, so the address field is missing).
const seedSample = `49115bec337bb5194f67595a46ab9c1304f1a5f3 master - 0 1528484579070 7 connected 10923-16383
17692c7c50ec70d680c8f7751bd9ee8adbaa2326 slave f3f9350bb32fb3df0bf5c22c68a899e871286d37 0 1528484579070 5 connected
fce995e6a9808b0aee5b8f560705ba7d04fa2d0b slave 49115bec337bb5194f67595a46ab9c1304f1a5f3 0 1528484579070 7 connected
afb84fa160435525e47f6cf3eeeb3a339b8971ac slave f3f9350bb32fb3df0bf5c22c68a899e871286d37 0 1528484579773 8 connected
f73cb422e3464faf46067574e182cbd88eab901f slave f63d2d73bd223bde1ff69762f6f2684038985435 0 1528484579070 4 connected
f63d2d73bd223bde1ff69762f6f2684038985435 master - 0 1528484579070 4 connected 5461-10922
895513958a17c0ceb3a95512d2bc3611b0c38ad5 slave 49115bec337bb5194f67595a46ab9c1304f1a5f3 0 1528484579000 7 connected
f3f9350bb32fb3df0bf5c22c68a899e871286d37 myself,master - 0 1528484579000 1 connected 0-5460
25b63783b167414e28034a21d24ba554ede8d4eb slave f63d2d73bd223bde1ff69762f6f2684038985435 0 1528484579070 9 connected
`

func TestParseSeedSample(t *testing.T) {
	nodes, err := ParseClusterNodes(seedSample)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 9 {
		t.Fatalf("got %d nodes, want 9", len(nodes))
	}
	var masters, replicas []string
	for _, n := range nodes {
		if n.IsMaster() {
			masters = append(masters, fmt.Sprintf("%s %s", shortID(n.ID), FormatRanges(n.Slots)))
		} else if n.IsReplica() {
			replicas = append(replicas, shortID(n.ID)+"->"+shortID(n.MasterID))
		}
		if n.IP != "" {
			t.Errorf("%s: address %q from a line without address", n.ID, n.IP)
		}
	}
	want := []string{"49115bec 10923-16383", "f63d2d73 5461-10922", "f3f9350b 0-5460"}
	if d := cmp.Diff(want, masters); d != "" {
		t.Errorf("masters (-want +got):\n%s", d)
	}
	if len(replicas) != 6 {
		t.Errorf("replicas %v, want 6", replicas)
	}
	if !nodes[7].Flags.Has(FlagMyself) || nodes[7].ConfigEpoch != 1 {
		t.Errorf("myself line: %+v", nodes[7])
	}
}

func TestParseClusterNodesLines(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Node
	}{
		{
			name: "redis 7 master with hostname",
			line: "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host-a.example slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected",
			want: Node{ID: "07c37dfeb235213a872192d90877d0cd55635b91", IP: "127.0.0.1", Port: 30004, CPort: 31004, Hostname: "host-a.example",
				Flags: Flags(FlagReplica), MasterID: "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca", PongRecv: 1426238317239, ConfigEpoch: 4, Connected: true},
		},
		{
			name: "redis 3 address without bus port, several ranges",
			line: "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002 master - 0 1426238316232 2 connected 5461-10922 12 0-11",
			want: Node{ID: "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1", IP: "127.0.0.1", Port: 30002, Flags: Flags(FlagMaster),
				PongRecv: 1426238316232, ConfigEpoch: 2, Connected: true, Slots: []SlotRange{{0, 12}, {5461, 10922}}},
		},
		{
			name: "noaddr master still owning slots",
			line: "13a77c4e5f0b7f5b35d2c8e0e52c9b9f1c0e2d11 :0@0 master,noaddr - 1700000000000 1699999990000 3 disconnected 10923-16383",
			want: Node{ID: "13a77c4e5f0b7f5b35d2c8e0e52c9b9f1c0e2d11", Port: 0, Flags: Flags(FlagMaster | FlagNoAddr),
				PingSent: 1700000000000, PongRecv: 1699999990000, ConfigEpoch: 3, Slots: []SlotRange{{10923, 16383}}},
		},
		{
			name: "suspected failure",
			line: "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.13:6380@16380 slave,fail? 13a77c4e5f0b7f5b35d2c8e0e52c9b9f1c0e2d11 1700000000000 0 3 disconnected",
			want: Node{ID: "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f", IP: "127.0.0.13", Port: 6380, CPort: 16380,
				Flags: Flags(FlagReplica | FlagPFail), MasterID: "13a77c4e5f0b7f5b35d2c8e0e52c9b9f1c0e2d11", PingSent: 1700000000000, ConfigEpoch: 3},
		},
		{
			name: "handshake",
			line: "e0e2c5861c5d25053e89c98f1c440bc1042769dd 127.0.0.12:27101@37101 handshake - 0 0 0 disconnected",
			want: Node{ID: "e0e2c5861c5d25053e89c98f1c440bc1042769dd", IP: "127.0.0.12", Port: 27101, CPort: 37101, Flags: Flags(FlagHandshake)},
		},
		{
			name: "migrating and importing slots",
			line: "f3f9350bb32fb3df0bf5c22c68a899e871286d37 127.0.0.11:6379@16379 myself,master - 0 0 1 connected 0-5460 [5461->-f63d2d73bd223bde1ff69762f6f2684038985435] [93-<-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]",
			want: Node{ID: "f3f9350bb32fb3df0bf5c22c68a899e871286d37", IP: "127.0.0.11", Port: 6379, CPort: 16379, Flags: Flags(FlagMyself | FlagMaster),
				ConfigEpoch: 1, Connected: true, Slots: []SlotRange{{0, 5460}},
				Migrating: map[int]string{5461: "f63d2d73bd223bde1ff69762f6f2684038985435"},
				Importing: map[int]string{93: "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f"}},
		},
		{
			name: "ipv6 and noflags",
			line: "aa 	[::1]:7000@17000 noflags - 0 0 0 connected 16383",
			want: Node{ID: "aa", IP: "::1", Port: 7000, CPort: 17000, Connected: true, Slots: []SlotRange{{16383, 16383}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, err := ParseClusterNodes(tt.line + "\n")
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff([]Node{tt.want}, nodes); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestParseClusterNodesErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"too few fields", "abc master - 0", "too few fields"},
		{"bad id", "xyz 127.0.0.1:1@2 master - 0 0 0 connected", "bad node id"},
		{"bad flags", "ab 127.0.0.1:1@2 boss - 0 0 0 connected", "bad flags"},
		{"bad slot", "ab 127.0.0.1:1@2 master - 0 0 0 connected 16384", "bad slot"},
		{"reversed range", "ab 127.0.0.1:1@2 master - 0 0 0 connected 10-5", "bad slot range"},
		{"bad link", "ab 127.0.0.1:1@2 master - 0 0 0 maybe", "bad link-state"},
		{"bad epoch", "ab 127.0.0.1:1@2 master - 0 0 x connected", "bad config-epoch"},
		{"bad port", "ab 127.0.0.1:99999@2 master - 0 0 0 connected", "bad port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseClusterNodes(tt.text)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestSplitSlots(t *testing.T) {
	tests := []struct {
		n    int
		want string
	}{
		{1, "0-16383"},
		{3, "0-5460,5461-10922,10923-16383"},
		{4, "0-4095,4096-8191,8192-12287,12288-16383"},
		{5, "0-3276,3277-6553,6554-9829,9830-13106,13107-16383"},
	}
	for _, tt := range tests {
		if got := FormatRanges(SplitSlots(tt.n)); got != tt.want {
			t.Errorf("SplitSlots(%d) = %s, want %s", tt.n, got, tt.want)
		}
	}
}

func TestParseInfo(t *testing.T) {
	m := ParseInfo("# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nslave_repl_offset:42\r\n")
	want := map[string]string{"role": "slave", "master_link_status": "up", "slave_repl_offset": "42"}
	if d := cmp.Diff(want, m); d != "" {
		t.Error(d)
	}
}

func FuzzParseClusterNodes(f *testing.F) {
	f.Add(seedSample)
	f.Add("13a77c4e5f0b7f5b35d2c8e0e52c9b9f1c0e2d11 :0@0 master,noaddr - 1 1 3 disconnected 10923-16383\n")
	f.Add("f3 127.0.0.11:6379@16379,h myself,master - 0 0 1 connected 0-5460 [5461->-f63d] [93-<-29]\n")
	f.Add("aa [::1]:7000@17000 slave,fail? bb 0 0 0 connected\n")
	f.Fuzz(func(t *testing.T, text string) {
		nodes, err := ParseClusterNodes(text)
		if err != nil {
			return
		}
		for _, n := range nodes {
			if !validID(n.ID) {
				t.Fatalf("accepted bad id %q", n.ID)
			}
			prev := -2
			for _, r := range n.Slots {
				if r.Start < 0 || r.End >= NumSlots || r.End < r.Start || r.Start <= prev+1 {
					t.Fatalf("bad ranges %v from %q", n.Slots, text)
				}
				prev = r.End
			}
			if n.Port < 0 || n.Port > 65535 {
				t.Fatalf("bad port %d", n.Port)
			}
			_ = n.Flags.String()
		}
	})
}

// clusterNodesText renders a CLUSTER NODES answer for n instances: n/3 masters owning equal
// ranges, the rest replicas.
func clusterNodesText(n int) string {
	var b strings.Builder
	masters := n / 3
	ranges := SplitSlots(masters)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%040x", i+1)
		addr := fmt.Sprintf("127.0.%d.%d:%d@%d", i/250, i%250+1, 6379+i%3, 16379+i%3)
		if i < masters {
			fmt.Fprintf(&b, "%s %s master - 0 1700000000%03d %d connected %s\n", id, addr, i%1000, i+1, ranges[i])
		} else {
			fmt.Fprintf(&b, "%s %s slave %040x 0 1700000000%03d %d connected\n", id, addr, i%masters+1, i%1000, i%masters+1)
		}
	}
	return b.String()
}

func BenchmarkParseClusterNodes300(b *testing.B) {
	text := clusterNodesText(300)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		nodes, err := ParseClusterNodes(text)
		if err != nil || len(nodes) != 300 {
			b.Fatalf("%v %d", err, len(nodes))
		}
	}
}
