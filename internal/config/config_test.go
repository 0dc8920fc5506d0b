package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type sample struct {
	Name  string `yaml:"name"`
	Count int    `yaml:"count"`
}

func TestDecodeKeepsDefaultsRefusesUnknownFieldsAndReturnsTheDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte("count: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := sample{Name: "default", Count: 1}
	got, err := Decode(p, &v)
	if err != nil || got != dir || v.Name != "default" || v.Count != 3 {
		t.Fatalf("Decode = %q, %v, %+v", got, err, v)
	}
	if err := os.WriteFile(p, []byte("cuont: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(p, &v); err == nil || !strings.Contains(err.Error(), "cuont") || !strings.Contains(err.Error(), p) {
		t.Fatalf("unknown field: %v", err)
	}
	empty := sample{Name: "default"}
	if err := DecodeBytes(nil, &empty); err != nil || empty.Name != "default" {
		t.Fatalf("empty document: %v %+v", err, empty)
	}
}

func TestPath(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ dir, p, want string }{
		{"/etc/sluice", "secrets/token", "/etc/sluice/secrets/token"},
		{"/etc/sluice", "/run/secrets/token", "/run/secrets/token"},
		{"", "token", "token"},
		{"/etc/sluice", "", ""},
	} {
		if got := Path(c.dir, c.p); got != c.want {
			t.Errorf("Path(%q, %q) = %q, want %q", c.dir, c.p, got, c.want)
		}
	}
}

func TestSecretRead(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tok"), []byte("s3cret value\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONFIG_TEST_SECRET", "from-env")
	t.Setenv("CONFIG_TEST_EMPTY", "")
	sec := func(file, env string) Secret {
		return Secret{FileKey: "token_file", EnvKey: "token_env", File: file, Env: env}
	}
	for _, c := range []struct {
		name, file, env, want, errHas string
	}{
		{name: "file relative to the config", file: "tok", want: "s3cret value"},
		{name: "env", env: "CONFIG_TEST_SECRET", want: "from-env"},
		{name: "neither"},
		{name: "both", file: "tok", env: "CONFIG_TEST_SECRET", errHas: "not both"},
		{name: "empty file", file: "empty", errHas: "token_file"},
		{name: "missing file", file: "nope", errHas: "token_file"},
		{name: "empty env", env: "CONFIG_TEST_EMPTY", errHas: "CONFIG_TEST_EMPTY is unset or empty"},
		{name: "unset env", env: "CONFIG_TEST_UNSET", errHas: "token_env"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := sec(c.file, c.env).Read(dir)
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("err = %v, want one containing %q", err, c.errHas)
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "from-env") {
					t.Fatalf("the error shows the secret: %v", err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("Read = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
