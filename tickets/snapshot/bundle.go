package snapshot

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// secretKey matches names whose values are secrets: passwords, tokens, keys,
// SASL and TLS material, credentials in URLs.
var secretKey = regexp.MustCompile(`(?i)(pass(word|wd|phrase)?$|password|passwd|secret|token|credential|sasl\.jaas|api[_.-]?key|access[_.-]?key|private[_.-]?key|ssl\.key|\.key$|authorization|cookie|webhook)`)

// The patterns of secrets inside free text (log lines, error messages,
// annotations). Each keeps what says what the secret was and replaces the
// secret itself.
var (
	// key=value, key: value and "key":"value" with a secret-looking key, such
	// as db_password=hunter2 or "client_secret": "x".
	secretPair = regexp.MustCompile(`(?i)((?:[a-z0-9_.-]*(?:password|passwd|pwd|passphrase|secret|token|api[_.-]?key|apikey|access[_.-]?key|private[_.-]?key|credentials?)[a-z0-9_.-]*)["']?\s*[=:]\s*["']?)([^"'\s,&;}]+)`)
	// user:password@ in URLs of any scheme.
	secretURL = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*://[^/\s:@]*:)([^@\s/]+)(@)`)
	// Authorization headers and their bare schemes: Basic, Bearer, Digest, token.
	authHeader = regexp.MustCompile(`(?i)(\b(?:basic|bearer|digest|token|negotiate)\s+)[a-z0-9._~+/=-]{6,}`)
	// Cookie and Set-Cookie headers: the whole value.
	cookieHeader = regexp.MustCompile(`(?i)(\b(?:set-)?cookie\s*:\s*)[^\r\n]+`)
	// Slack incoming-webhook URLs: the path is the secret.
	slackWebhook = regexp.MustCompile(`(?i)(https://hooks\.slack(?:-gov)?\.com/)[A-Za-z0-9/_-]+`)
	// Slack tokens (bot, user, app, refresh, legacy), GitHub and GitLab
	// tokens, AWS access key ids, JSON web tokens and Sluice's own API tokens.
	knownToken = regexp.MustCompile(`\b(?:xox[abposr]-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,}|gh[pousr]_[A-Za-z0-9]{20,}|glpat-[A-Za-z0-9_-]{20,}|(?:AKIA|ASIA)[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}|slt_[A-Za-z0-9_-]{20,})`)
	// PEM private keys, whole blocks, and a lone BEGIN line of a block cut off
	// by a log line's end.
	pemKey = regexp.MustCompile(`(?s)-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)`)
)

// Redacted replaces a secret value.
const Redacted = "[REDACTED]"

// Redact removes secrets from free text: key=value pairs with secret-looking
// keys, URL passwords, Authorization and Cookie headers, Slack webhook URLs,
// Slack/GitHub/GitLab/AWS/JWT/Sluice tokens and PEM private keys. It is the
// one redaction of the ticket service: snapshots go through it when captured,
// shown and bundled.
func Redact(s string) string {
	s = pemKey.ReplaceAllString(s, "-----BEGIN ${1}----- "+Redacted)
	s = cookieHeader.ReplaceAllString(s, "${1}"+Redacted)
	s = slackWebhook.ReplaceAllString(s, "${1}"+Redacted)
	s = knownToken.ReplaceAllString(s, Redacted)
	s = secretURL.ReplaceAllString(s, "${1}"+Redacted+"${3}")
	s = authHeader.ReplaceAllString(s, "${1}"+Redacted)
	return secretPair.ReplaceAllStringFunc(s, func(m string) string {
		sub := secretPair.FindStringSubmatch(m)
		if sub[2] == Redacted || strings.HasPrefix(sub[2], "[REDACTED") {
			return m
		}
		return sub[1] + Redacted
	})
}

// RedactSnapshot returns a copy of s with every string passed through Redact
// and the values of secret-named fields replaced, for display.
func RedactSnapshot(s *Snapshot) *Snapshot {
	if s == nil {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return &Snapshot{CapturedAt: s.CapturedAt, Target: s.Target, Errors: []string{"snapshot could not be redacted"}}
	}
	var out Snapshot
	if err := json.Unmarshal([]byte(redactJSON(b)), &out); err != nil {
		return &Snapshot{CapturedAt: s.CapturedAt, Target: s.Target, Errors: []string{"snapshot could not be redacted"}}
	}
	return &out
}

// RedactMap returns m with the values of secret keys replaced and the other
// values' embedded secrets removed.
func RedactMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if secretKey.MatchString(k) {
			out[k] = Redacted
		} else {
			out[k] = Redact(v)
		}
	}
	return out
}

// File is one extra file of a bundle.
type File struct {
	Name string
	Data any // marshalled as indented JSON, or written as is if a string
}

// Bundle writes a tar.gz with the snapshot split into files, plus extra files
// (the incident, its alarms and timeline), with secrets removed from everything.
func Bundle(w io.Writer, s *Snapshot, extra []File) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	dir := fmt.Sprintf("sluice-incident-%d-%s/", s.Target.IncidentID, s.CapturedAt.UTC().Format("20060102T150405Z"))
	var logs strings.Builder
	for _, l := range s.Logs {
		fmt.Fprintf(&logs, "%s: %s\n", l.File, Redact(l.Line))
	}
	files := []File{
		{"README.txt", fmt.Sprintf("Sluice fault snapshot of incident %d (%s), captured %s.\n\nDiagnosis: %s\n\nFindings:\n- %s\n\nErrors while capturing:\n- %s\n\nSecrets (passwords, tokens, keys, SASL/TLS settings, URL credentials) are replaced by %s.\n",
			s.Target.IncidentID, s.Target.Title, s.CapturedAt.UTC().Format(time.RFC3339), s.Diagnosis,
			strings.Join(s.Findings, "\n- "), strings.Join(s.Errors, "\n- "), Redacted)},
		{"snapshot.json", s},
		{"cluster.json", s.Cluster},
		{"partitions.json", map[string]any{"affected": s.Affected, "under_replicated": s.UnderReplicated, "offline": s.Offline}},
		{"groups.json", s.Groups},
		{"events.json", s.Events},
		{"charts.json", s.Charts},
		{"logs.txt", logs.String()},
	}
	files = append(files, extra...)
	for _, f := range files {
		var b []byte
		switch v := f.Data.(type) {
		case string:
			b = []byte(Redact(v))
		default:
			j, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				return fmt.Errorf("%s: %w", f.Name, err)
			}
			b = []byte(redactJSON(j))
		}
		hdr := &tar.Header{Name: dir + f.Name, Mode: 0o644, Size: int64(len(b)), ModTime: s.CapturedAt, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// redactJSON walks a JSON document and redacts values under secret keys and
// secrets inside strings.
func redactJSON(b []byte) string {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return Redact(string(b))
	}
	out, _ := json.MarshalIndent(redactValue(v), "", "  ")
	return string(out)
}

func redactValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if _, isStr := e.(string); isStr && secretKey.MatchString(k) {
				x[k] = Redacted
			} else {
				x[k] = redactValue(e)
			}
		}
		return x
	case []any:
		for i := range x {
			x[i] = redactValue(x[i])
		}
		return x
	case string:
		return Redact(x)
	}
	return v
}
