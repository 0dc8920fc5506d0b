package broker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// OAuthBearerConfig configures how OAUTHBEARER tokens (JWTs) are validated, with
// Kafka's names.
type OAuthBearerConfig struct {
	// JWKSEndpointURL is where the signing keys are read, a file:// or https:// URL,
	// Kafka's `sasl.oauthbearer.jwks.endpoint.url`. Required for OAUTHBEARER unless
	// unsecured tokens are enabled.
	JWKSEndpointURL string `yaml:"sasl.oauthbearer.jwks.endpoint.url"`
	// JWKSEndpointRefreshMs is how often the keys are read again, Kafka's
	// `sasl.oauthbearer.jwks.endpoint.refresh.ms`. Default 3600000. A token signed by an
	// unknown key id also triggers a refresh (at most every 10 s).
	JWKSEndpointRefreshMs int64 `yaml:"sasl.oauthbearer.jwks.endpoint.refresh.ms"`
	// ExpectedIssuer, when set, must equal the token's iss, Kafka's
	// `sasl.oauthbearer.expected.issuer`.
	ExpectedIssuer string `yaml:"sasl.oauthbearer.expected.issuer"`
	// ExpectedAudience, when set, lists audiences of which the token's aud must hold
	// one, Kafka's `sasl.oauthbearer.expected.audience`.
	ExpectedAudience string `yaml:"sasl.oauthbearer.expected.audience"`
	// SubClaimName is the claim holding the principal name, Kafka's
	// `sasl.oauthbearer.sub.claim.name`. Default sub.
	SubClaimName string `yaml:"sasl.oauthbearer.sub.claim.name"`
	// ClockSkewSeconds is the leeway for exp, nbf and iat, Kafka's
	// `sasl.oauthbearer.clock.skew.seconds`. Default 30.
	ClockSkewSeconds int64 `yaml:"sasl.oauthbearer.clock.skew.seconds"`
	// UnsecuredTokens accepts unsigned tokens ({"alg":"none"}), checking only their
	// expiry and subject, like Kafka's default unsecured validator. For tests only;
	// default false.
	UnsecuredTokens bool `yaml:"sasl.oauthbearer.unsecured.tokens.enable"`
}

func (c *OAuthBearerConfig) validate() error {
	if c.JWKSEndpointURL == "" && !c.UnsecuredTokens {
		return fmt.Errorf("sasl.oauthbearer.jwks.endpoint.url: required by OAUTHBEARER (or sasl.oauthbearer.unsecured.tokens.enable for tests)")
	}
	if c.JWKSEndpointURL != "" {
		u, err := url.Parse(c.JWKSEndpointURL)
		if err != nil || (u.Scheme != "file" && u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("sasl.oauthbearer.jwks.endpoint.url: %q is not a file:// or https:// URL", c.JWKSEndpointURL)
		}
	}
	if c.JWKSEndpointRefreshMs < 0 || c.ClockSkewSeconds < 0 {
		return fmt.Errorf("sasl.oauthbearer.jwks.endpoint.refresh.ms, sasl.oauthbearer.clock.skew.seconds: value out of range")
	}
	return nil
}

// oauthValidator checks bearer tokens. Keys are cached and read again every refresh
// interval, or when a token names an unknown key id.
type oauthValidator struct {
	cfg    OAuthBearerConfig
	client *http.Client

	mu        sync.Mutex
	keys      *jose.JSONWebKeySet
	fetched   time.Time
	lastForce time.Time
}

func newOAuthValidator(cfg OAuthBearerConfig) *oauthValidator {
	if cfg.JWKSEndpointRefreshMs == 0 {
		cfg.JWKSEndpointRefreshMs = 3600000
	}
	if cfg.ClockSkewSeconds == 0 {
		cfg.ClockSkewSeconds = 30
	}
	if cfg.SubClaimName == "" {
		cfg.SubClaimName = "sub"
	}
	return &oauthValidator{cfg: cfg, client: &http.Client{Timeout: 10 * time.Second}}
}

// maxJWKS bounds the size of a key set read from a file or URL.
const maxJWKS = 1 << 20

func (v *oauthValidator) fetchKeys(ctx context.Context) (*jose.JSONWebKeySet, error) {
	u, err := url.Parse(v.cfg.JWKSEndpointURL)
	if err != nil {
		return nil, err
	}
	var raw []byte
	if u.Scheme == "file" {
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		raw, err = io.ReadAll(io.LimitReader(f, maxJWKS))
		if err != nil {
			return nil, err
		}
	} else {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSEndpointURL, nil)
		if err != nil {
			return nil, err
		}
		resp, err := v.client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("JWKS endpoint answered %s", resp.Status)
		}
		if raw, err = io.ReadAll(io.LimitReader(resp.Body, maxJWKS)); err != nil {
			return nil, err
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	return &set, nil
}

// keysFor returns the verification keys with the given key id, refreshing the set
// when it is stale or does not know the id.
func (v *oauthValidator) keysFor(kid string, now time.Time) ([]jose.JSONWebKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	stale := v.keys == nil || now.Sub(v.fetched) > time.Duration(v.cfg.JWKSEndpointRefreshMs)*time.Millisecond
	if !stale && len(v.lookup(kid)) == 0 && now.Sub(v.lastForce) > 10*time.Second {
		stale, v.lastForce = true, now
	}
	if stale {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		set, err := v.fetchKeys(ctx)
		cancel()
		if err != nil && v.keys == nil {
			return nil, err
		}
		if err == nil {
			v.keys, v.fetched = set, now
		}
	}
	return v.lookup(kid), nil
}

func (v *oauthValidator) lookup(kid string) []jose.JSONWebKey {
	if v.keys == nil {
		return nil
	}
	if kid == "" {
		return v.keys.Keys
	}
	return v.keys.Key(kid)
}

var signedAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// validate checks a token and returns its subject and expiry.
func (v *oauthValidator) validate(token string, now time.Time) (string, time.Time, error) {
	var claims jwt.Claims
	var all map[string]any
	if v.cfg.UnsecuredTokens && isUnsecuredJWT(token) {
		parts := strings.Split(token, ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			return "", time.Time{}, err
		}
		if err := json.Unmarshal(payload, &claims); err != nil {
			return "", time.Time{}, err
		}
		if err := json.Unmarshal(payload, &all); err != nil {
			return "", time.Time{}, err
		}
	} else {
		if v.cfg.JWKSEndpointURL == "" {
			return "", time.Time{}, errors.New("no JWKS configured")
		}
		tok, err := jwt.ParseSigned(token, signedAlgs)
		if err != nil {
			return "", time.Time{}, err
		}
		if len(tok.Headers) != 1 {
			return "", time.Time{}, errors.New("one signature expected")
		}
		keys, err := v.keysFor(tok.Headers[0].KeyID, now)
		if err != nil {
			return "", time.Time{}, err
		}
		verified := false
		for _, k := range keys {
			if k.Use != "" && k.Use != "sig" {
				continue
			}
			if tok.Claims(k.Key, &claims, &all) == nil {
				verified = true
				break
			}
		}
		if !verified {
			return "", time.Time{}, errors.New("signature does not verify with any key")
		}
	}
	if claims.Expiry == nil {
		return "", time.Time{}, errors.New("no exp claim")
	}
	exp := jwt.Expected{Time: now}
	if v.cfg.ExpectedIssuer != "" {
		exp.Issuer = v.cfg.ExpectedIssuer
	}
	if v.cfg.ExpectedAudience != "" {
		exp.AnyAudience = splitList(v.cfg.ExpectedAudience)
	}
	if err := claims.ValidateWithLeeway(exp, time.Duration(v.cfg.ClockSkewSeconds)*time.Second); err != nil {
		return "", time.Time{}, err
	}
	sub, _ := all[v.cfg.SubClaimName].(string)
	if sub == "" {
		return "", time.Time{}, fmt.Errorf("no %s claim", v.cfg.SubClaimName)
	}
	return sub, claims.Expiry.Time(), nil
}

// isUnsecuredJWT reports whether token is "header.payload." with {"alg":"none"}.
func isUnsecuredJWT(token string) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[2] != "" {
		return false
	}
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return false
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	return json.Unmarshal(h, &hdr) == nil && hdr.Alg == "none"
}
