package broker

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/sluicemq/sluice/internal/tlsfiles"
)

// tlsSource is the broker's certificate and trusted CAs (internal/tlsfiles).
type tlsSource = tlsfiles.Source

func newTLSSource(keystore, truststore string) (*tlsSource, error) {
	return tlsfiles.New(keystore, truststore)
}

// principalRule is one rule of ssl.principal.mapping.rules.
type principalRule struct {
	isDefault   bool
	pattern     *regexp.Regexp
	replacement string
	caseChange  byte // 'L', 'U' or 0
}

// parsePrincipalRules parses Kafka's ssl.principal.mapping.rules:
// "RULE:pattern/replacement/[LU],...,DEFAULT". Patterns match the whole subject (Kafka
// uses Matcher.matches) and may contain commas; "\/" is a slash inside a pattern.
func parsePrincipalRules(s string) ([]principalRule, error) {
	var rules []principalRule
	rest := strings.TrimSpace(s)
	for rest != "" {
		rest = strings.TrimLeft(rest, " ,")
		if rest == "" {
			break
		}
		switch {
		case strings.HasPrefix(rest, "DEFAULT"):
			rules = append(rules, principalRule{isDefault: true})
			rest = rest[len("DEFAULT"):]
		case strings.HasPrefix(rest, "RULE:"):
			rest = rest[len("RULE:"):]
			var parts [2]string
			for i := range parts {
				var b strings.Builder
				j := 0
				for ; j < len(rest); j++ {
					if rest[j] == '\\' && j+1 < len(rest) && rest[j+1] == '/' {
						b.WriteByte('/')
						j++
						continue
					}
					if rest[j] == '/' {
						break
					}
					b.WriteByte(rest[j])
				}
				if j >= len(rest) {
					return nil, fmt.Errorf("rule %q: missing /", "RULE:"+s)
				}
				parts[i] = b.String()
				rest = rest[j+1:]
			}
			re, err := regexp.Compile("^(?:" + parts[0] + ")$")
			if err != nil {
				return nil, fmt.Errorf("rule pattern %q: %w", parts[0], err)
			}
			r := principalRule{pattern: re, replacement: parts[1]}
			if rest != "" && (rest[0] == 'L' || rest[0] == 'U') {
				r.caseChange = rest[0]
				rest = rest[1:]
			}
			rules = append(rules, r)
		default:
			return nil, fmt.Errorf("%q is neither RULE:... nor DEFAULT", rest)
		}
		rest = strings.TrimLeft(rest, " ")
		if rest != "" && rest[0] != ',' {
			return nil, fmt.Errorf("unexpected %q after a rule", rest)
		}
	}
	return rules, nil
}

// mapPrincipal applies the rules to a certificate subject (RFC 2253 form, e.g.
// "CN=broker1,O=Sluice") and returns the principal name: the first matching rule
// wins, DEFAULT (and no rule at all) keeps the subject.
func mapPrincipal(rules []principalRule, subject string) (string, error) {
	if len(rules) == 0 {
		return subject, nil
	}
	for _, r := range rules {
		if r.isDefault {
			return subject, nil
		}
		m := r.pattern.FindStringSubmatchIndex(subject)
		if m == nil {
			continue
		}
		out := string(r.pattern.ExpandString(nil, r.replacement, subject, m))
		switch r.caseChange {
		case 'L':
			out = strings.ToLower(out)
		case 'U':
			out = strings.ToUpper(out)
		}
		return out, nil
	}
	return "", fmt.Errorf("no ssl.principal.mapping.rules rule matches %q", subject)
}
