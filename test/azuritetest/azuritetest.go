// Package azuritetest runs Azurite, Microsoft's Azure Storage emulator (npm package
// `azurite`), for tests: its blob service on a free 127.0.0.1 port, data in a temp dir,
// with one storage account whose name and key are random, so that a wrong key is refused
// as Azure refuses it (shared-key signatures are checked). Telemetry is off.
//
// Azurite comes from <repo root>/.cache/azurite, installed by scripts/install-azurite.sh,
// and runs on the machine's node. A test that finds it missing is skipped, saying so.
package azuritetest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/pgward/pgward/test/servertest"
)

// Server is a running Azurite blob service.
type Server struct {
	*servertest.Proc
	// Endpoint is the account's blob endpoint, "http://127.0.0.1:port/account".
	Endpoint string
	// Account and Key are the storage account's name and (base64) shared key.
	Account, Key string
}

// Start starts Azurite and stops it when the test ends; it skips the test when Azurite is
// not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	main, err := servertest.CachePath("azurite/node_modules/azurite/dist/src/blob/main.js")
	if err != nil {
		t.Fatalf("azuritetest: %v", err)
	}
	servertest.Skip(t, "azurite", main, "scripts/install-azurite.sh")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("azuritetest: node is needed to run azurite: %v", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	acct := make([]byte, 5)
	_, _ = rand.Read(acct)
	s := &Server{Account: "pgw" + hex.EncodeToString(acct), Key: base64.StdEncoding.EncodeToString(key)}
	dir := t.TempDir()
	s.Proc = servertest.Start(t, servertest.Spec{
		Name: "azurite",
		Path: node,
		Args: func(port int) []string {
			return []string{main, "--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port),
				"--location", dir, "--silent", "--disableTelemetry", "--skipApiVersionCheck",
				"--disableProductStyleUrl"}
		},
		// The account goes through the environment, not argv, which every local user can read.
		Env: []string{"AZURITE_ACCOUNTS=" + s.Account + ":" + s.Key},
		Dir: dir,
	})
	s.Endpoint = fmt.Sprintf("http://%s/%s", s.Addr, s.Account)
	return s
}

// Client returns an independent client of the account, for checks that must not go
// through the code under test.
func (s *Server) Client(t testing.TB) *azblob.Client {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(s.Account, s.Key)
	if err != nil {
		t.Fatalf("azuritetest: %v", err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(s.Endpoint+"/", cred, nil)
	if err != nil {
		t.Fatalf("azuritetest: %v", err)
	}
	return c
}

// CreateContainer creates a container.
func (s *Server) CreateContainer(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client(t).CreateContainer(ctx, name, nil); err != nil {
		t.Fatalf("azuritetest: create container %s: %v", name, err)
	}
}

// BlobNames lists the blobs under prefix in container.
func (s *Server) BlobNames(t testing.TB, container, prefix string) []string {
	t.Helper()
	var names []string
	p := s.Client(t).NewListBlobsFlatPager(container, &azblob.ListBlobsFlatOptions{Prefix: &prefix})
	for p.More() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("azuritetest: list %s/%s: %v", container, prefix, err)
		}
		for _, b := range page.Segment.BlobItems {
			names = append(names, *b.Name)
		}
	}
	return names
}

// ContainerName returns a name unique within this process (servertest.UniqueName).
func ContainerName(t testing.TB) string { return servertest.UniqueName(t) }

// ContainerSAS returns a SAS token (without "?") allowing every blob operation on the
// container for an hour.
func (s *Server) ContainerSAS(t testing.TB, name string) string {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(s.Account, s.Key)
	if err != nil {
		t.Fatalf("azuritetest: %v", err)
	}
	perms := sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, Delete: true, List: true}
	q, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		StartTime:     time.Now().Add(-time.Minute),
		ExpiryTime:    time.Now().Add(time.Hour),
		Permissions:   perms.String(),
		ContainerName: name,
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatalf("azuritetest: sign SAS: %v", err)
	}
	return q.Encode()
}

// ContainerNames lists the account's containers.
func (s *Server) ContainerNames(t testing.TB) []string {
	t.Helper()
	var names []string
	p := s.Client(t).NewListContainersPager(nil)
	for p.More() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("azuritetest: list containers: %v", err)
		}
		for _, c := range page.ContainerItems {
			names = append(names, *c.Name)
		}
	}
	return names
}

// DeleteBlob deletes a blob.
func (s *Server) DeleteBlob(t testing.TB, container, name string) {
	t.Helper()
	if _, err := s.Client(t).DeleteBlob(t.Context(), container, name, nil); err != nil {
		t.Fatalf("azuritetest: delete %s/%s: %v", container, name, err)
	}
}
