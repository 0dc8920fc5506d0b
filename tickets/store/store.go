package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/glebarez/sqlite"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// ErrNotFound is returned when the incident, ticket, user or token asked for does
// not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a change does not fit the current state, such as
// acknowledging a resolved incident.
var ErrConflict = errors.New("conflict")

// Store is the ticket service's database.
type Store struct {
	db  *gorm.DB
	now func() time.Time
}

// Options configure Open.
type Options struct {
	// Database is a PostgreSQL URL (postgres://...). When empty, SQLite at
	// DataDir/tickets.db is used.
	Database string
	// DataDir holds the SQLite database.
	DataDir string
	// Now is the clock, time.Now by default; tests move it.
	Now func() time.Time
}

// Open connects to the database and applies the migrations it lacks.
func Open(ctx context.Context, opts Options) (*Store, error) {
	var dial gorm.Dialector
	sqliteDB := false
	switch {
	case strings.HasPrefix(opts.Database, "postgres://") || strings.HasPrefix(opts.Database, "postgresql://"):
		dial = postgres.Open(opts.Database)
	case opts.Database != "":
		return nil, fmt.Errorf("database %q: only postgres:// URLs are supported (SQLite is chosen with the data directory)", redactURL(opts.Database))
	case opts.DataDir == "":
		return nil, errors.New("neither a database URL nor a data directory given")
	default:
		if err := os.MkdirAll(opts.DataDir, 0o750); err != nil {
			return nil, err
		}
		path := filepath.Join(opts.DataDir, "tickets.db")
		dial = sqlite.Open("file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)")
		sqliteDB = true
	}
	db, err := gorm.Open(dial, &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		// Unique violations become gorm.ErrDuplicatedKey on both databases.
		TranslateError: true,
		NowFunc:        func() time.Time { return time.Now().UTC() },
	})
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	if sqliteDB {
		// SQLite has one writer; a single connection queues writers in Go instead
		// of failing them with SQLITE_BUSY.
		sqlDB.SetMaxOpenConns(1)
	} else {
		sqlDB.SetMaxOpenConns(20)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("connect database: %w", err)
	}
	if err := migrate(ctx, db); err != nil {
		sqlDB.Close()
		return nil, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, now: func() time.Time { return now().UTC() }}, nil
}

// Close closes the database connections.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// DB is the gorm handle, for tests and read-only reports.
func (s *Store) DB() *gorm.DB { return s.db }

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }

func redactURL(u string) string {
	if at := strings.LastIndex(u, "@"); at > 0 {
		if i := strings.Index(u, "://"); i > 0 && i < at {
			return u[:i+3] + "REDACTED" + u[at:]
		}
	}
	return u
}

func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}

// randomToken returns n random bytes, base64url encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// RandomPassword returns a password for a generated first admin.
func RandomPassword() string { return randomToken(18) }

// EnsureAdmin creates the user admin with password if no user exists yet, and
// reports whether it did.
func (s *Store) EnsureAdmin(ctx context.Context, password string) (bool, error) {
	created := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&User{}).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		created = true
		return createUser(tx, "admin", password, RoleAdmin, s.now())
	})
	return created, err
}

// MinPasswordLength is the shortest password accepted for a user.
const MinPasswordLength = 10

// PasswordError says why a new password is refused.
type PasswordError struct{ Reason string }

func (e *PasswordError) Error() string { return "password: " + e.Reason }

// CheckPassword says what is wrong with a new password (a *PasswordError), or
// nil.
func CheckPassword(password string) error {
	if len(password) < MinPasswordLength {
		return &PasswordError{fmt.Sprintf("at least %d characters", MinPasswordLength)}
	}
	if len(password) > 72 {
		return &PasswordError{"at most 72 bytes (bcrypt)"}
	}
	if IsExamplePassword(password) {
		return &PasswordError{"this is the example password of deploy/secrets/*.example (change-me-...); choose your own"}
	}
	return nil
}

// IsExamplePassword reports whether s is one of the placeholder secrets shipped
// in deploy/secrets/*.example (change-me-...), which must never be used.
func IsExamplePassword(s string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(s)), "change-me")
}

func hashPassword(password string) (string, error) {
	if err := CheckPassword(password); err != nil {
		return "", err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(hash), err
}

func createUser(tx *gorm.DB, username, password string, role Role, now time.Time) error {
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	return tx.Create(&User{Username: username, PasswordHash: hash, Role: role, CreatedAt: now}).Error
}

// CreateUser adds a local user.
func (s *Store) CreateUser(ctx context.Context, username, password string, role Role) error {
	return s.CreateUserBy(ctx, username, password, role, "")
}

// CreateUserBy adds a local user on actor's word, recorded in the audit log.
// A taken username is ErrConflict.
func (s *Store) CreateUserBy(ctx context.Context, username, password string, role Role, actor string) error {
	now := s.now()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := createUser(tx, username, password, role, now); err != nil {
			return err
		}
		return audit(tx, now, actor, "user.create", "user "+username, "role "+string(role))
	})
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return fmt.Errorf("%w: username %s is taken", ErrConflict, username)
	}
	return err
}

// Authenticate returns the user whose username and password match.
func (s *Store) Authenticate(ctx context.Context, username, password string) (*User, error) {
	var u User
	err := s.db.WithContext(ctx).Where("username = ?", username).First(&u).Error
	if err != nil {
		// Compare anyway so a missing user takes as long as a wrong password.
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return nil, ErrNotFound
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil || u.Disabled() {
		return nil, ErrNotFound
	}
	return &u, nil
}

var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte(randomToken(16)), bcrypt.DefaultCost)
	return h
})

// CreateSession starts a browser session for user and returns the cookie value
// and the session (with its CSRF token).
func (s *Store) CreateSession(ctx context.Context, userID uint, ttl time.Duration) (string, *Session, error) {
	cookie := randomToken(32)
	sess := &Session{ID: hashToken(cookie), UserID: userID, CSRFToken: randomToken(24), ExpiresAt: s.now().Add(ttl), CreatedAt: s.now()}
	return cookie, sess, s.db.WithContext(ctx).Create(sess).Error
}

// PurgeSessions deletes the sessions that expired before now and returns how
// many.
func (s *Store) PurgeSessions(ctx context.Context) (int64, error) {
	res := s.db.WithContext(ctx).Where("expires_at <= ?", s.now()).Delete(&Session{})
	return res.RowsAffected, res.Error
}

// LookupSession returns the live session and its user for a cookie value.
func (s *Store) LookupSession(ctx context.Context, cookie string) (*Session, *User, error) {
	var sess Session
	if err := s.db.WithContext(ctx).Where("id = ? AND expires_at > ?", hashToken(cookie), s.now()).First(&sess).Error; err != nil {
		return nil, nil, notFound(err)
	}
	var u User
	if err := s.db.WithContext(ctx).First(&u, sess.UserID).Error; err != nil {
		return nil, nil, notFound(err)
	}
	if u.Disabled() {
		return nil, nil, ErrNotFound
	}
	return &sess, &u, nil
}

// DeleteSession logs a browser out.
func (s *Store) DeleteSession(ctx context.Context, cookie string) error {
	return s.db.WithContext(ctx).Where("id = ?", hashToken(cookie)).Delete(&Session{}).Error
}
