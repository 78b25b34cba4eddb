package cmdline

import (
	"reflect"
	"testing"
)

func TestFields(t *testing.T) {
	cases := map[string][]string{
		`pgward archive-push --repo /a %p`:               {"pgward", "archive-push", "--repo", "/a", "%p"},
		`  x  'a b'  "c \"d\" \n"  e\ f `:                {"x", "a b", `c "d" \n`, "e f"},
		`test ! -f /x/%f && /bin/pgward archive-push %p`: {"test", "!", "-f", "/x/%f", "&&", "/bin/pgward", "archive-push", "%p"},
		`''`: {""},
	}
	for in, want := range cases {
		if got := Fields(in); !reflect.DeepEqual(got, want) {
			t.Errorf("Fields(%q) = %q, want %q", in, got, want)
		}
	}
}

// What Build writes, Parse reads back: the restore_command restore writes and the
// archive_command check suggests are read by the same grammar check uses.
func TestRoundTrip(t *testing.T) {
	for _, inv := range []Invocation{
		{Program: "/usr/local/bin/pgward", Command: "archive-get", Config: "/etc/pgward/it's.toml",
			Repos: []string{"/srv/backup", "s3://bucket/pg prefix"}, Cluster: "main",
			PassphraseFile: "/etc/pgward/pass phrase", PassphraseCommand: "cat /run/secret | tr -d '\\n' # 100%",
			Options: []Option{{"s3-endpoint", "https://minio:9000"}, {"s3-path-style", "true"}}, Args: []string{"%f", "%p"}},
		{Program: "pgward", Command: "archive-push", Repos: []string{"/r"}, Args: []string{"%p"}},
	} {
		got := Parse(inv.Build())
		if !reflect.DeepEqual(got, inv) {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", inv.Build(), got, inv)
		}
	}
}

// Lines written by hand: --name=value, environment assignments in front.
func TestParseByHand(t *testing.T) {
	inv := Parse(`PGWARD_REPO=/a,/b PGWARD_CLUSTER=db2 /opt/pgward archive-push --config=/etc/x.toml --push-ahead 8 %p`)
	want := Invocation{Program: "/opt/pgward", Command: "archive-push", Config: "/etc/x.toml", Repos: []string{"/a", "/b"},
		Cluster: "db2", Options: []Option{{"push-ahead", "8"}}, Args: []string{"%p"}}
	if !reflect.DeepEqual(inv, want) {
		t.Errorf("got %+v\nwant %+v", inv, want)
	}
}

func TestConf(t *testing.T) {
	if got := Conf("archive_command", `pgward archive-push --repo '/it'\''s' %p`); got != `archive_command = 'pgward archive-push --repo ''/it''\''''s'' %p'` {
		t.Errorf("Conf: %s", got)
	}
}
