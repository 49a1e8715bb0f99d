package store

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"runtime"
	"strconv"

	"github.com/zalando/go-keyring"
)

// Per-platform value limits, in bytes of the stored string.
const (
	// windowsMaxValue is CRED_MAX_CREDENTIAL_BLOB_SIZE; go-keyring stores
	// the UTF-8 bytes and rejects longer values with ErrSetDataTooBig.
	windowsMaxValue = 2560

	// macOSMaxValue keeps go-keyring's `security -i` command line, which
	// carries the value base64-encoded (4/3 longer) plus a prefix, the
	// service and the key, well below its 4096-byte limit: 2000 bytes
	// become 2668 base64 characters, leaving over 1300 bytes for the rest.
	macOSMaxValue = 2000

	// defaultChunkSize is the part size used when a keychain without a
	// known limit still answers ErrSetDataTooBig.
	defaultChunkSize = 2000
)

// host is the operating system a Keychain runs on. Tests substitute it to
// simulate other platforms and a missing session bus without touching the
// real environment.
type host struct {
	goos      string
	lookupEnv func(string) (string, bool)
	stat      func(string) (fs.FileInfo, error)
	readFile  func(string) ([]byte, error)
	getuid    func() int
	keyring   Backend // the OS keychain, used when Keychain.Backend is nil
}

// thisHost is the real operating system. It is never modified.
var thisHost = &host{
	goos:      runtime.GOOS,
	lookupEnv: os.LookupEnv,
	stat:      os.Stat,
	readFile:  os.ReadFile,
	getuid:    os.Getuid,
	keyring:   newOSKeyring(),
}

// maxValueSize is the largest value stored whole; 0 means no limit.
func (h *host) maxValueSize() int {
	switch h.goos {
	case "windows":
		return windowsMaxValue
	case "darwin":
		return macOSMaxValue
	default:
		return 0
	}
}

// keychainName is the Status.Backend of a working keychain.
func (h *host) keychainName() string {
	switch h.goos {
	case "windows":
		return "keychain (Windows Credential Manager)"
	case "darwin":
		return "keychain (macOS)"
	default:
		return "keychain (Secret Service)"
	}
}

// noSessionBus reports whether go-keyring would have to autolaunch a D-Bus
// session bus. godbus does that by running dbus-launch, which leaves a
// dbus-daemon (and often a gnome-keyring-daemon) behind for every process,
// so the keychain must not be touched at all. The checks mirror godbus's
// own address discovery.
func (h *host) noSessionBus() bool {
	if h.goos == "darwin" || h.goos == "windows" {
		return false // go-keyring does not use D-Bus there
	}
	if addr, _ := h.lookupEnv("DBUS_SESSION_BUS_ADDRESS"); addr != "" && addr != "autolaunch:" {
		return false
	}
	dir := "/run/user/" + strconv.Itoa(h.getuid())
	if _, err := h.stat(dir + "/bus"); !errors.Is(err, fs.ErrNotExist) {
		return false // godbus uses the socket whenever stat does not say "not exist"
	}
	if b, err := h.readFile(dir + "/dbus-session"); err == nil && bytes.HasPrefix(b, []byte("DBUS_SESSION_BUS_ADDRESS=")) {
		return false
	}
	return true
}

// goKeyring is the OS keychain through github.com/zalando/go-keyring's
// functions. The Secret Service has its own Backend (secretservice.go).
type goKeyring struct{}

func (goKeyring) Get(service, user string) (string, error) {
	return keyring.Get(service, user)
}

func (goKeyring) Set(service, user, password string) error {
	return keyring.Set(service, user, password)
}

func (goKeyring) Delete(service, user string) error {
	return keyring.Delete(service, user)
}
