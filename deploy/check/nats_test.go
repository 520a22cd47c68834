package check_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"backinstock/services/notifier/edgeauth"
	"backinstock/shared/testenv"
)

// TestShippedNATSConfigsStartClosed runs the nats.conf files the deploy
// directory ships (compose, and the Kubernetes ConfigMap) in a real
// nats-server with a setup from edgeauth.WriteNew (what `notifier
// edge-setup` writes) and TLS files standing in for the Secrets: the paths
// are moved under a temporary directory, the ports made free, the routes
// dropped. The server must start, refuse a client without credentials and
// take the notifier's and the gateway's service users with JetStream.
func TestShippedNATSConfigsStartClosed(t *testing.T) {
	cases := []struct {
		name, file, confDir string
		tls                 bool
	}{
		{"compose", "deploy/compose/nats.conf", ".", false},
		{"k8s", "deploy/k8s/base/nats.conf", "config", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			if _, err := edgeauth.WriteNew(filepath.Join(tmp, "edge")); err != nil {
				t.Fatal(err)
			}
			files, err := testenv.WriteTLSFiles(filepath.Join(tmp, "tls"))
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(repoRoot(t), tc.file))
			if err != nil {
				t.Fatal(err)
			}
			conf := strings.NewReplacer(
				"/etc/nats/edge/", tmp+"/edge/",
				"/etc/nats/tls/", tmp+"/tls/",
				"/etc/nats/websocket-tls/", tmp+"/tls/",
				"/var/run/nats/", tmp+"/",
				"/data/", tmp+"/data/",
			).Replace(string(data))
			conf = regexp.MustCompile(`(?m)^(\s*(http_)?port:)\s*\d+`).ReplaceAllString(conf, "$1 -1")
			t.Setenv("POD_NAME", "nats-0")
			path := filepath.Join(tmp, tc.confDir, "nats.conf")
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			opts, err := server.ProcessConfigFile(path)
			if err != nil {
				t.Fatalf("nats-server refuses %s: %v", tc.file, err)
			}
			if tc.tls && (opts.TLSConfig == nil || opts.Websocket.TLSConfig == nil || opts.Cluster.TLSConfig == nil || opts.Cluster.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert) {
				t.Fatal("the client, websocket and route ports must run TLS, the routes verifying their peers")
			}
			// One server alone: a JetStream cluster would wait for the
			// routes of its peers, so the running copy has no cluster block.
			if err := os.WriteFile(path, regexp.MustCompile(`(?ms)^cluster \{.*?^\}\n`).ReplaceAll([]byte(conf), nil), 0o644); err != nil {
				t.Fatal(err)
			}
			if opts, err = server.ProcessConfigFile(path); err != nil {
				t.Fatal(err)
			}
			opts.NoSigs, opts.NoLog = true, true
			opts.Host, opts.HTTPHost, opts.Websocket.Host = "127.0.0.1", "127.0.0.1", "127.0.0.1"
			s, err := server.NewServer(opts)
			if err != nil {
				t.Fatalf("nats-server %s: %v", tc.file, err)
			}
			go s.Start()
			defer s.Shutdown()
			if !s.ReadyForConnections(20 * time.Second) {
				t.Fatalf("%s: not ready", tc.file)
			}
			url := fmt.Sprintf("nats://127.0.0.1:%d", s.Addr().(*net.TCPAddr).Port)
			var tlsOpt []nats.Option
			if tc.tls {
				tlsOpt = append(tlsOpt, nats.RootCAs(files.CA))
			}
			if nc, err := nats.Connect(url, append(tlsOpt, nats.Timeout(5*time.Second))...); err == nil {
				nc.Close()
				t.Fatal("a client without credentials connected")
			} else if !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("a client without credentials: %v, want an authorization violation", err)
			}
			for _, creds := range []string{edgeauth.FileServiceCreds, edgeauth.FileGatewayCreds} {
				nc, err := nats.Connect(url, append(tlsOpt, nats.UserCredentials(filepath.Join(tmp, "edge", creds)))...)
				if err != nil {
					t.Fatalf("%s: %v", creds, err)
				}
				js, _ := jetstream.New(nc)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if _, err := js.AccountInfo(ctx); err != nil {
					t.Errorf("%s: JetStream: %v", creds, err)
				}
				cancel()
				nc.Close()
			}
		})
	}
}
