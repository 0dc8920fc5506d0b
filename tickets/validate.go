package tickets

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Input limits of the API and the UI.
const (
	maxTitle   = 200
	maxText    = 20000
	maxRefName = 249 // Kafka's longest topic name
)

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$`)

// fieldErrors collects validation failures, all reported at once.
type fieldErrors []string

func (f *fieldErrors) add(field, format string, args ...any) {
	*f = append(*f, field+": "+fmt.Sprintf(format, args...))
}

func (f fieldErrors) Error() string { return strings.Join(f, "; ") }

// text checks a free-text field: valid UTF-8, no control characters other than
// newlines and tabs, length in runes within [min, max]. HTML is allowed and
// stored as typed; it is escaped when rendered.
func (f *fieldErrors) text(field, v string, min, max int) {
	if !utf8.ValidString(v) {
		f.add(field, "not valid UTF-8")
		return
	}
	n := utf8.RuneCountInString(v)
	if n < min || (min > 0 && strings.TrimSpace(v) == "") {
		f.add(field, "required")
		return
	}
	if n > max {
		f.add(field, "at most %d characters (got %d)", max, n)
		return
	}
	for _, r := range v {
		if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
			f.add(field, "control character %U not allowed", r)
			return
		}
	}
}

// name checks an identifier such as a user name; empty is allowed unless
// required.
func (f *fieldErrors) name(field, v string, required bool) {
	if v == "" {
		if required {
			f.add(field, "required")
		}
		return
	}
	if !namePattern.MatchString(v) {
		f.add(field, "1 to 64 letters, digits or ._@+- starting with a letter or digit")
	}
}

// ref checks a Kafka topic or group name or a cluster name (may be empty).
func (f *fieldErrors) ref(field, v string) {
	if v == "" {
		return
	}
	f.text(field, v, 1, maxRefName)
	if strings.ContainsAny(v, " \t\n\r") {
		f.add(field, "no whitespace")
	}
}

func (f *fieldErrors) oneOf(field, v string, allowed []string) {
	if !slices.Contains(allowed, v) {
		f.add(field, "one of %s", strings.Join(allowed, ", "))
	}
}

func (f fieldErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	return f
}
