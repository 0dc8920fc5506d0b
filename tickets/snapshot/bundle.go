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
var secretKey = regexp.MustCompile(`(?i)(pass(word)?|secret|token|credential|sasl\.jaas|api[_.-]?key|private[_.-]?key|ssl\.key|\.key$|authorization|cookie)`)

// secretInText matches key=value and "key":"value" pairs with a secret key, and
// user:password@ in URLs, inside free text such as log lines.
var (
	secretPair = regexp.MustCompile(`(?i)((?:[a-z0-9_.-]*(?:password|passwd|secret|token|api[_.-]?key|credential)[a-z0-9_.-]*)["']?\s*[=:]\s*["']?)([^"'\s,&}]+)`)
	secretURL  = regexp.MustCompile(`(://[^/\s:@]+:)([^@\s/]+)(@)`)
	bearer     = regexp.MustCompile(`(?i)(bearer\s+)[a-z0-9._~+/=-]+`)
)

// Redacted replaces a secret value.
const Redacted = "[REDACTED]"

// Redact removes secrets from free text.
func Redact(s string) string {
	s = secretPair.ReplaceAllString(s, "${1}"+Redacted)
	s = secretURL.ReplaceAllString(s, "${1}"+Redacted+"${3}")
	return bearer.ReplaceAllString(s, "${1}"+Redacted)
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
