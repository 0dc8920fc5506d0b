package saslprincipal

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPlain(t *testing.T) {
	for _, c := range []struct {
		msg, user, err string
	}{
		{"\x00alice\x00secret", "alice", ""},
		{"alice\x00alice\x00secret", "alice", ""},
		{"bob\x00alice\x00secret", "", "different from username"},
		{"\x00\x00secret", "", ErrEmptyCredential.Error()},
		{"\x00alice\x00", "", ErrEmptyCredential.Error()},
		{"alice:secret", "", "Invalid SASL/PLAIN message"},
		{"\x00a\x00b\x00c", "", "Invalid SASL/PLAIN message"},
	} {
		user, _, err := Plain([]byte(c.msg))
		if c.err != "" {
			require.ErrorContains(t, err, c.err, "%q", c.msg)
			continue
		}
		require.NoError(t, err, "%q", c.msg)
		require.Equal(t, c.user, user)
	}
}

func TestParseSCRAMClientFirst(t *testing.T) {
	for _, c := range []struct {
		msg, user, err string
	}{
		{"n,,n=alice,r=abc", "alice", ""},
		{"y,,n=al=2Cice=3D,r=abc", "al,ice=", ""},
		{"n,a=alice,n=alice,r=abc", "alice", ""},
		{"n,a=bob,n=alice,r=abc", "", "authorization id"},
		{"n,,n=al=41ice,r=abc", "", "Invalid SCRAM username"},
		{"n,,n=,r=abc", "", "Invalid SCRAM username"},
		{"n,,n=alice,r=", "", "client-first"},
		{"n,,n=alice,r=abc,m=ext", "", "mandatory"},
		{"p=tls,,n=alice,r=abc", "", "client-first"},
		{"n,,r=abc,n=alice", "", "client-first"},
		{"garbage", "", "client-first"},
	} {
		first, err := ParseSCRAMClientFirst(c.msg)
		if c.err != "" {
			require.ErrorContains(t, err, c.err, c.msg)
			continue
		}
		require.NoError(t, err, c.msg)
		require.Equal(t, c.user, first.User)
		require.Equal(t, "abc", first.Nonce)
	}
}

// FuzzSCRAMClientFirst checks the parser never panics and that a user it
// returns escapes back to what the message carried.
func FuzzSCRAMClientFirst(f *testing.F) {
	f.Add("n,,n=alice,r=abc")
	f.Add("y,a=al=2Cice,n=al=2Cice,r=x,e=1")
	f.Fuzz(func(t *testing.T, msg string) {
		first, err := ParseSCRAMClientFirst(msg)
		if err != nil {
			return
		}
		require.NotEmpty(t, first.User)
		require.NotEmpty(t, first.Nonce)
	})
}
