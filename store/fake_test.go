package store

import (
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/zalando/go-keyring"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/oauthtest"
)

// fakeKey names one fake keychain entry.
type fakeKey struct{ service, user string }

// fakeBackend is a thread-safe in-memory keychain that behaves like
// go-keyring: keyring.ErrNotFound for missing entries and, with maxSize,
// keyring.ErrSetDataTooBig for long values (2560 emulates Windows).
type fakeBackend struct {
	maxSize  int // >0: Set of a longer value fails with keyring.ErrSetDataTooBig
	maxEntry int // >0: the same for user and value together, as macOS counts the key

	// hook, if set, runs before every call, outside the lock; a non-nil
	// error is returned by the call. It may block.
	hook func(op, service, user string) error

	mu    sync.Mutex
	items map[fakeKey]string
	ops   []string // "op service user", in call order
}

func (f *fakeBackend) enter(op, service, user string) error {
	f.mu.Lock()
	f.ops = append(f.ops, op+" "+service+" "+user)
	hook := f.hook
	f.mu.Unlock()
	if hook != nil {
		return hook(op, service, user)
	}
	return nil
}

func (f *fakeBackend) Get(service, user string) (string, error) {
	if err := f.enter("get", service, user); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.items[fakeKey{service, user}]
	if !ok {
		return "", keyring.ErrNotFound
	}
	return v, nil
}

func (f *fakeBackend) Set(service, user, password string) error {
	if err := f.enter("set", service, user); err != nil {
		return err
	}
	if f.maxSize > 0 && len(password) > f.maxSize || f.maxEntry > 0 && len(user)+len(password) > f.maxEntry {
		return keyring.ErrSetDataTooBig
	}
	f.put(service, user, password)
	return nil
}

func (f *fakeBackend) Delete(service, user string) error {
	if err := f.enter("delete", service, user); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fakeKey{service, user}
	if _, ok := f.items[k]; !ok {
		return keyring.ErrNotFound
	}
	delete(f.items, k)
	return nil
}

// put stores an entry directly, as another program would.
func (f *fakeBackend) put(service, user, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.items == nil {
		f.items = make(map[fakeKey]string)
	}
	f.items[fakeKey{service, user}] = value
}

// raw reads an entry directly.
func (f *fakeBackend) raw(service, user string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.items[fakeKey{service, user}]
	return v, ok
}

// users lists the sorted user names stored under service.
func (f *fakeBackend) users(service string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var users []string
	for k := range f.items {
		if k.service == service {
			users = append(users, k.user)
		}
	}
	slices.Sort(users)
	return users
}

// opsFor lists the calls made for service, as "op user", in order.
func (f *fakeBackend) opsFor(service string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ops []string
	for _, op := range f.ops {
		name, rest, _ := strings.Cut(op, " ")
		if svc, user, _ := strings.Cut(rest, " "); svc == service {
			ops = append(ops, name+" "+user)
		}
	}
	return ops
}

// logBuffer collects log output from many goroutines.
type logBuffer struct{ oauthtest.Buffer }

// count reports how many log lines contain s.
func (l *logBuffer) count(s string) int {
	n := 0
	for line := range strings.Lines(l.String()) {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func newTestLogger() (*slog.Logger, *logBuffer) {
	buf := new(logBuffer)
	return slog.New(slog.NewTextHandler(buf, nil)), buf
}

// fakeHost is a Linux host with a session bus and no other quirks, so
// platform defaults do not depend on the machine running the tests.
func fakeHost(keychain Backend) *host {
	return &host{
		goos: "linux",
		lookupEnv: func(name string) (string, bool) {
			if name == "DBUS_SESSION_BUS_ADDRESS" {
				return "unix:path=/fake/bus", true
			}
			return "", false
		},
		stat:     func(string) (fs.FileInfo, error) { return nil, fs.ErrNotExist },
		readFile: func(string) ([]byte, error) { return nil, fs.ErrNotExist },
		getuid:   func() int { return 1000 },
		keyring:  keychain,
	}
}

const testService = "mcp-oauth-proxy-test"

// newFakeKeychain returns a Keychain on f under testService, on a fake
// Linux host, and its log.
func newFakeKeychain(f *fakeBackend) (*Keychain, *logBuffer) {
	logger, buf := newTestLogger()
	return &Keychain{Service: testService, Backend: f, Logger: logger, sys: fakeHost(nil)}, buf
}
