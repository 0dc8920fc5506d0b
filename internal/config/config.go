// Package config is the one configuration convention of every sluice subcommand (docs/architecture.md,
// "Configuration"): a YAML file decoded strictly over the defaults, relative paths resolved against
// the file's directory, and secrets read from a `*_file` or a `*_env`, never from the file itself.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Decode reads the YAML file at path into v, over the values v already holds (the defaults).
// Unknown fields are errors; an empty file leaves v as it is. It returns the file's directory, the
// base of the file's relative paths (see Path).
func Decode(path string, v any) (dir string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if err := DecodeBytes(b, v); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return filepath.Dir(path), nil
}

// DecodeBytes is Decode for a document in memory.
func DecodeBytes(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Path resolves p, a path from a configuration file, against dir, the file's directory. Absolute
// paths, empty paths and paths from flags (dir "") are returned as they are.
func Path(dir, p string) string {
	if p == "" || dir == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// Secret names a secret by its two settings: a file holding it or an environment variable.
type Secret struct {
	// FileKey and EnvKey are the settings' names as the user writes them ("token_file",
	// "sasl.password.env"), for error messages.
	FileKey, EnvKey string
	// File is the file's path (relative paths resolve against the configuration's directory).
	File string
	// Env is the environment variable's name.
	Env string
}

// Set reports whether either setting is given.
func (s Secret) Set() bool { return s.File != "" || s.Env != "" }

// Read returns the secret: the file's content without its trailing line break, or the variable's
// value. It is an error to set both, and a secret that is set but empty (an empty file, an unset or
// empty variable) is an error naming the setting, never its value. A secret set by neither
// returns "" and no error: the caller decides whether it is required.
func (s Secret) Read(dir string) (string, error) {
	switch {
	case s.File != "" && s.Env != "":
		return "", fmt.Errorf("set %s or %s, not both", s.FileKey, s.EnvKey)
	case s.File != "":
		p := Path(dir, s.File)
		b, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.FileKey, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("%s: %s is empty", s.FileKey, p)
		}
		return v, nil
	case s.Env != "":
		v := os.Getenv(s.Env)
		if v == "" {
			return "", fmt.Errorf("%s: the environment variable %s is unset or empty", s.EnvKey, s.Env)
		}
		return v, nil
	}
	return "", nil
}
