//go:build !lean

package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGatewayBadFlags: a bad setting is an error naming it, before anything
// is bound; an unauthenticated gateway refuses a non-loopback address.
func TestGatewayBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bootstrap", ""}, "--bootstrap: at least one broker is required"},
		{[]string{"--bootstrap", "nohostport"}, `--bootstrap "nohostport"`},
		{[]string{"--bootstrap", "127.0.0.1:9092", "--listen", "0.0.0.0:9096"}, `--listen "0.0.0.0:9096": the gateway does not authenticate clients`},
		{[]string{"--bootstrap", "127.0.0.1:9092", "--advertised", "gw"}, `--advertised "gw"`},
		{[]string{"--bootstrap", "127.0.0.1:9092", "--node-id", "-1"}, "--node-id -1"},
		{[]string{"--bootstrap", "127.0.0.1:9092", "--max-connections", "-1"}, "--max-connections -1"},
		{[]string{"--bootstrap", "127.0.0.1:9092", "--socket-request-max-bytes", "10"}, "--socket-request-max-bytes 10"},
		{[]string{"--bootstrap", "127.0.0.1:9092", "--security-protocol", "SASL_SSL", "--sasl-username", ""}, "sasl.username"},
		{[]string{"--bootstrap", "127.0.0.1:9092", "--client-security-protocol", "SSL"}, `--client-security-protocol "SSL"`},
		{[]string{"--bootstrap", "127.0.0.1:9092", "--client-security-protocol", "SASL_SSL"}, "--ssl-keystore-location"},
		{[]string{"--bootstrap", "127.0.0.1:9092", "--client-security-protocol", "SASL_PLAINTEXT", "--listen", "0.0.0.0:0"}, "must authenticate to the brokers"},
	} {
		r := sluice(t, "", append([]string{"gateway"}, tc.args...)...)
		require.Equal(t, 1, r.code, "%v: %s", tc.args, r.stderr)
		require.Contains(t, r.stderr, tc.want, "%v", tc.args)
	}
}
