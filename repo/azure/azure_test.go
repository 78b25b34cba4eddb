package azure

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/storagetest"
	"github.com/pgward/pgward/test/azuritetest"
)

// env returns a Getenv with the server's account and key, overridden by kv pairs.
func env(srv *azuritetest.Server, kv ...string) func(string) string {
	m := map[string]string{envAccount: srv.Account, envKey: srv.Key}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func testConfig(srv *azuritetest.Server, containerName string) Config {
	return Config{Container: containerName, Endpoint: srv.Endpoint, Getenv: env(srv)}
}

// TestConformance runs the suite once, in one container that Create makes for the first
// subtest, each subtest under its own prefix: "p/1" and "p/10" share a string prefix, so a
// listing that does not stop at the prefix's slash shows another subtest's objects. Blocks are
// 1 MiB, so objects of a few MiB are staged in blocks. (Blobs at a container's root are the
// other tests' business.)
func TestConformance(t *testing.T) {
	srv := azuritetest.Start(t)
	name := azuritetest.ContainerName(t)
	n := 0
	storagetest.Run(t, func(t *testing.T) repo.Storage {
		n++
		c := testConfig(srv, name)
		c.Prefix = fmt.Sprintf("/p/%d/", n)
		c.BlockSize = 1 << 20
		st, err := Create(t.Context(), c)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if want := fmt.Sprintf("azure://%s/p/%d", name, n); st.String() != want {
			t.Fatalf("String() = %q, want %q", st.String(), want)
		}
		return st
	})
}

// TestOpenErrors: a missing container, a wrong key and missing credentials each give one
// sentence, classified, and never show the key.
func TestOpenErrors(t *testing.T) {
	srv := azuritetest.Start(t)
	name := azuritetest.ContainerName(t)
	srv.CreateContainer(t, name)
	wrongKey := "AAAA" + srv.Key[4:]
	cases := []struct {
		name string
		cfg  Config
		is   error
		want string
	}{
		{"MissingContainer", testConfig(srv, "no-such-container"), fs.ErrNotExist,
			"container no-such-container does not exist (create it, or run pgward init which creates it) (HTTP 404 ContainerNotFound)"},
		{"WrongKey", Config{Container: name, Endpoint: srv.Endpoint, Getenv: env(srv, envKey, wrongKey)}, fs.ErrPermission,
			"access denied to container " + name + ": check the credentials"},
		{"NoCredentials", Config{Container: name, Endpoint: srv.Endpoint, Getenv: env(srv, envKey, "")}, nil,
			"no Azure credentials for the plain-http endpoint"},
		{"BadKey", Config{Container: name, Endpoint: srv.Endpoint, Getenv: env(srv, envKey, "not base64!")}, nil,
			"AZURE_STORAGE_KEY is not a valid account key"},
		{"NoAccount", Config{Container: name, Getenv: env(srv, envAccount, "")}, nil,
			"no storage account: set AZURE_STORAGE_ACCOUNT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(t.Context(), tc.cfg)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v\nwant it to contain %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Open: %v is not %v", err, tc.is)
			}
			if strings.Contains(err.Error(), srv.Key) || strings.Contains(err.Error(), wrongKey) {
				t.Errorf("error shows the key: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %v", err)
			}
			var tr interface{ Transient() bool }
			if errors.As(err, &tr) && tr.Transient() {
				t.Errorf("error is transient, want permanent: %v", err)
			}
		})
	}
}

// TestCredentials: a SAS token for the container, or a connection string, is enough to use
// it; a connection string with an endpoint option as well is refused.
func TestCredentials(t *testing.T) {
	srv := azuritetest.Start(t)
	name := azuritetest.ContainerName(t)
	srv.CreateContainer(t, name)
	cs := fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;", srv.Account, srv.Key, srv.Endpoint)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"SAS", Config{Container: name, Endpoint: srv.Endpoint, Getenv: env(srv, envKey, "", envSAS, "?"+srv.ContainerSAS(t, name))}},
		{"ConnectionString", Config{Container: name, Getenv: env(srv, envKey, "", envAccount, "", envConnectionString, cs)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Open(t.Context(), tc.cfg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if err := st.Put(t.Context(), tc.name, strings.NewReader("cred"), 4); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if got := srv.BlobNames(t, name, tc.name); len(got) != 1 || got[0] != tc.name {
				t.Fatalf("blobs after Put: %v", got)
			}
		})
	}
	_, err := Open(t.Context(), Config{Container: name, Endpoint: srv.Endpoint, Getenv: env(srv, envConnectionString, cs)})
	if err == nil || !strings.Contains(err.Error(), "names the endpoint itself") || strings.Contains(err.Error(), srv.Key) {
		t.Fatalf("Open with a connection string and an endpoint: %v", err)
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ in, container, prefix, err string }{
		{"azure://backups/pg/main", "backups", "pg/main", ""},
		{"azure://backups", "backups", "", ""},
		{"azure://backups/", "backups", "", ""},
		{"azure://Backups/x", "", "", "lowercase"},
		{"azure://ab/x", "", "", "3 to 63"},
		{"azure://a--b/x", "", "", "single hyphens"},
		{"azure://abc/x?sig=1", "", "", "query"},
		{"azure://abc/a/../b", "", "", "invalid object name"},
	} {
		c, p, err := ParseURL(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseURL(%q) error %v, want one containing %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || c != tc.container || p != tc.prefix):
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", tc.in, c, p, err, tc.container, tc.prefix)
		}
	}
}

// TestFailingLargePut: a reader failing after some blocks were staged leaves no blob.
func TestFailingLargePut(t *testing.T) {
	srv := azuritetest.Start(t)
	name := azuritetest.ContainerName(t)
	srv.CreateContainer(t, name)
	c := testConfig(srv, name)
	c.BlockSize = 256 << 10
	st, err := Open(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	r := io.MultiReader(bytes.NewReader(make([]byte, 600<<10)), iotest.ErrReader(errors.New("source failed")))
	if err := st.Put(t.Context(), "big", r, 2<<20); err == nil {
		t.Fatal("Put with a reader failing after 600 KiB of 2 MiB succeeded")
	}
	if names := srv.BlobNames(t, name, ""); len(names) != 0 {
		t.Fatalf("blobs after a failed Put: %v", names)
	}
}

// TestOperationErrors: the service's answers to operations are one line each, with the
// status and Azure's error code, and a container deleted behind the repository's back is
// not taken for an empty one.
func TestOperationErrors(t *testing.T) {
	srv := azuritetest.Start(t)
	name := azuritetest.ContainerName(t)
	srv.CreateContainer(t, name)
	st, err := Open(t.Context(), testConfig(srv, name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client(t).DeleteContainer(t.Context(), name, nil); err != nil {
		t.Fatal(err)
	}
	err = st.Put(t.Context(), "x", strings.NewReader("x"), 1)
	if err == nil || err.Error() != "put azure://"+name+"/x: container "+name+" does not exist: HTTP 404 ContainerNotFound" {
		t.Errorf("Put into a deleted container: %v", err)
	}
	err = st.List(t.Context(), "", func(repo.ObjectInfo) error { return nil })
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("List of a deleted container: %v", err)
	}
}
