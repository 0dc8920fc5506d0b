package acl

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// reference decides like Authorize by looking at every binding: the definition the
// index must agree with.
func reference(cfg Config, bindings []Binding, principal, host string, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	for _, u := range cfg.SuperUsers {
		if u == principal {
			return true
		}
	}
	matched, allowed := false, false
	for i := range bindings {
		b := &bindings[i]
		if b.ResourceType != rt {
			continue
		}
		applies := (b.PatternType == kmsg.ACLResourcePatternTypeLiteral && (b.ResourceName == name || b.ResourceName == Wildcard)) ||
			(b.PatternType == kmsg.ACLResourcePatternTypePrefixed && strings.HasPrefix(name, b.ResourceName))
		if !applies {
			continue
		}
		matched = true
		switch result(b, principal, host, op) {
		case kmsg.ACLPermissionTypeDeny:
			return false
		case kmsg.ACLPermissionTypeAllow:
			allowed = true
		}
	}
	return allowed || (!matched && cfg.AllowIfNoACL)
}

// FuzzAuthorize checks the indexed authorizer decides exactly like a scan of every
// binding, for bindings and requests built from the input.
func FuzzAuthorize(f *testing.F) {
	f.Add([]byte("\x02\x03\x03\x03team-a.\x00alice\x00*\x00"), "team-a.orders", "alice", "10.0.0.1", uint8(3), uint8(2), true)
	f.Add([]byte("\x02\x04\x04\x02t\x00*\x00*\x00\x02\x03\x02\x03t\x00bob\x001.1.1.1\x00"), "t", "bob", "1.1.1.1", uint8(8), uint8(2), false)
	f.Fuzz(func(t *testing.T, spec []byte, name, user, host string, op, rt uint8, allowIfNone bool) {
		// Each binding: resource type, pattern type, operation, permission, then
		// NUL-terminated resource name, principal name and host.
		var bindings []Binding
		for len(spec) >= 4 && len(bindings) < 64 {
			b := Binding{ResourceType: kmsg.ACLResourceType(2 + spec[0]%4), PatternType: kmsg.ACLResourcePatternType(3 + spec[1]%2),
				Operation: kmsg.ACLOperation(2 + spec[2]%13), Permission: kmsg.ACLPermissionType(2 + spec[3]%2)}
			fields := strings.SplitN(string(spec[4:]), "\x00", 4)
			if len(fields) < 4 {
				break
			}
			b.ResourceName, b.Principal, b.Host = fields[0], "User:"+fields[1], fields[2]
			spec = []byte(fields[3])
			if b.Validate() != nil {
				continue
			}
			bindings = append(bindings, b)
		}
		cfg := Config{SuperUsers: []string{"User:admin"}, AllowIfNoACL: allowIfNone}
		a := New(cfg, bindings)
		principal := "User:" + user
		o, r := kmsg.ACLOperation(2+op%13), kmsg.ACLResourceType(2+rt%4)
		if got, want := a.Authorize(principal, host, o, r, name), reference(cfg, bindings, principal, host, o, r, name); got != want {
			t.Fatalf("Authorize(%s, %s, %s, %s, %q) = %v, scanning every binding says %v; bindings %v", principal, host, o, r, name, got, want, bindings)
		}
	})
}
