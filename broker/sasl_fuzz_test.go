package broker

import (
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker/metadata"
)

// fuzzImage holds one user, alice, with both SCRAM credentials for password "pw".
func fuzzImage() func() *metadata.Image {
	img := &metadata.Image{ScramCredentials: map[string]map[string]metadata.ScramCredential{
		"alice": {
			mechSCRAM256: newSCRAMCredential(mechSCRAM256, []byte("pw"), minSCRAMIterations),
			mechSCRAM512: newSCRAMCredential(mechSCRAM512, []byte("pw"), minSCRAMIterations),
		},
	}}
	return func() *metadata.Image { return img }
}

// FuzzSASLExchanges feeds arbitrary client messages to every mechanism's server side:
// none may panic, and none may authenticate without the password (the fuzzer never
// computes a valid SCRAM proof, and "pw" is kept out of the PLAIN corpus).
func FuzzSASLExchanges(f *testing.F) {
	f.Add(uint8(0), []byte("\x00alice\x00wrong"), []byte(nil))
	f.Add(uint8(1), []byte("n,,n=alice,r=abcdef"), []byte("c=biws,r=abcdefXYZ,p=AAAA"))
	f.Add(uint8(2), []byte("n,a=alice,n=alice,r=x,m=ext"), []byte("c=bixx,r=x,p="))
	f.Add(uint8(3), []byte("n,,\x01auth=Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.\x01\x01"), []byte("\x01"))
	img := fuzzImage()
	v := newOAuthValidator(OAuthBearerConfig{UnsecuredTokens: true})
	f.Fuzz(func(t *testing.T, which uint8, first, second []byte) {
		var ex saslExchange
		switch which % 4 {
		case 0:
			if string(first) == "\x00alice\x00pw" || string(first) == "alice\x00alice\x00pw" {
				return
			}
			ex = &plainExchange{img: img}
		case 1:
			ex = newSCRAMExchange(mechSCRAM256, img)
		case 2:
			ex = newSCRAMExchange(mechSCRAM512, img)
		case 3:
			ex = &oauthExchange{v: v}
		}
		_, done, err := ex.step(first)
		if err == nil && !done {
			_, done, err = ex.step(second)
		}
		if done && err == nil && which%4 != 3 {
			t.Fatalf("authenticated as %s without the password", ex.principal())
		}
		if done && which%4 == 3 {
			// An unsecured token is accepted only with a subject and a future expiry.
			if ex.principal() == "User:" || !ex.expires().After(time.Now().Add(-time.Minute)) {
				t.Fatalf("accepted token for %q expiring %s", ex.principal(), ex.expires())
			}
		}
	})
}

// FuzzPrincipalRules parses arbitrary ssl.principal.mapping.rules and applies them.
func FuzzPrincipalRules(f *testing.F) {
	f.Add("RULE:^CN=(.*?),OU=(.*)$/$1@$2/L,DEFAULT", "CN=a,OU=b")
	f.Add(`RULE:^CN=a\/b$/x/U`, "CN=a/b")
	f.Fuzz(func(t *testing.T, rules, subject string) {
		r, err := parsePrincipalRules(rules)
		if err != nil {
			return
		}
		mapPrincipal(r, subject)
	})
}
