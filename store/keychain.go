package store

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/zalando/go-keyring"
)

// DefaultService is the keychain service used when Keychain.Service is
// empty. fast-agent stores its MCP OAuth entries under it too.
const DefaultService = "fast-agent-mcp"

const (
	// probeService holds the start-up probe entry, apart from real values
	// (the same service fast-agent probes with).
	probeService = "fast-agent-keyring-probe"

	// maxTimeout bounds every keychain call. Local calls take 1–30 ms; a
	// keychain that has not answered by then is hung (D-Bus activation
	// waits, unanswered unlock prompts) and would block requests.
	maxTimeout = 5 * time.Second
)

// Backend is the raw OS keychain: the functions of
// github.com/zalando/go-keyring. Tests provide fakes.
//
// Get and Delete report a missing entry with ErrNotFound or go-keyring's
// keyring.ErrNotFound. Set may report keyring.ErrSetDataTooBig, which makes
// the Keychain store the value in parts. Every other error means the
// keychain is unusable. Implementations must be safe for concurrent use.
type Backend interface {
	Get(service, user string) (string, error)
	Set(service, user, password string) error
	Delete(service, user string) error
}

// Keychain stores values in the OS keychain (macOS Keychain, Windows
// Credential Manager or a Secret Service such as gnome-keyring), one
// entry per key with the key as the user name under Service. It is safe
// for concurrent use. Its fields must not change after the first call.
//
// # Values
//
// Keychains hold text, so values must be valid UTF-8 (JSON always is); Set
// rejects anything else. A value that fits the platform limit is stored
// whole and verbatim, so other programs using the same layout, such as
// fast-agent, read and write the same entries; on the Secret Service the
// items carry Python keyring's attributes, as fast-agent's do. On macOS,
// go-keyring stores the value base64-encoded behind a prefix, which only
// go-keyring reads back.
//
// # Falling back to memory
//
// Before its first call (or in Status) the Keychain checks the keychain
// once. Where go-keyring talks D-Bus (Linux and the other Unix systems
// except macOS) and neither DBUS_SESSION_BUS_ADDRESS nor
// /run/user/<uid>/bus exists, it does not touch the keychain at all, since
// go-keyring would spawn dbus-launch and leave daemons behind. Otherwise
// (and with any Backend) it reads, writes, reads back and deletes a
// "probe:<random>" entry under the service "fast-agent-keyring-probe",
// within one Timeout.
//
// Every keychain call has a deadline (Timeout). If the probe fails, a call
// times out, or a call fails with any error other than "not found" or
// "too big", the Keychain gives up on the keychain for the rest of its
// life: it logs a single warning naming the reason, keeps all further
// values in Fallback, and never calls the keychain again, so hung calls
// cannot pile up. The call that hit the failure is completed in Fallback:
// a Set stores the value there and returns nil, so the value stays usable
// for this process; a Get or Delete returns what Fallback returns
// (normally ErrNotFound). Status then reports Backend "memory" and the
// reason. Values already in the keychain are not copied to Fallback.
//
// # Chunking
//
// A value longer than the platform limit (see MaxValueSize), or one the
// keychain rejects with keyring.ErrSetDataTooBig, is stored in parts:
//
//   - The parts go first, under "<key>#S" … "<key>#S+N-1", each at most
//     the limit (2000 bytes when the platform has none), cut at UTF-8
//     character boundaries. While the keychain still answers "too big",
//     the part size is halved, down to 256 bytes; past that Set fails with
//     an error wrapping keyring.ErrSetDataTooBig. S is 0 unless the value
//     being replaced has parts there: the new parts never overwrite the
//     old ones, so a write that stops halfway leaves the old value whole.
//   - Then a header goes under "<key>":
//     "mcp-oauth-proxy-chunked:v1:<N>:<lowercase hex SHA-256 of the whole value>"
//     when S is 0, else "mcp-oauth-proxy-chunked:v2:<S>:<N>:<SHA-256>".
//     It cannot be mistaken for JSON. A value that itself starts with
//     "mcp-oauth-proxy-chunked:" is always chunked, so it cannot be mistaken
//     for a header.
//   - The parts of the value replaced are deleted last, unless another
//     process has written the key meanwhile (its header is there): its
//     parts may be where the replaced ones were.
//
// Get reassembles the parts and checks the hash. When a part is missing
// or the hash does not match, it reads the header again: another process
// may have replaced the value meanwhile, and then the new one is read. A
// missing part, a hash mismatch or an unreadable header that stays makes
// the value absent (ErrNotFound, with a warning); a truncated value is
// never returned. Delete removes the
// header and the parts. Keys should not end in "#<number>", which would
// collide with parts.
type Keychain struct {
	// Service is the keychain service name. Empty means DefaultService.
	Service string

	// Timeout is the deadline of each keychain call; a call that has not
	// returned by then is abandoned. Zero means 5s, which is also the
	// maximum: longer values are cut to 5s.
	Timeout time.Duration

	// Backend is the keychain. Nil means the OS keychain through
	// github.com/zalando/go-keyring, guarded by the session bus check
	// described above.
	Backend Backend

	// MaxValueSize is the largest value, in bytes, stored as one entry;
	// longer values are chunked. Zero means the platform's limit: 2560 on
	// Windows (the credential blob limit), 2000 on macOS (go-keyring's
	// command line holds about 2900 bytes of value, less the key and
	// service), none on Linux and other systems (Secret Service). A
	// negative value means never chunk: values the keychain rejects as too
	// big fail with an error wrapping keyring.ErrSetDataTooBig.
	MaxValueSize int

	// Fallback holds the values once the keychain has been given up. Nil
	// means a private Memory.
	Fallback *Memory

	// Logger receives the fallback warning and warnings about damaged
	// chunked values. Nil means slog.Default().
	Logger *slog.Logger

	sys *host // nil means thisHost; tests substitute it

	once       sync.Once
	service    string
	timeout    time.Duration
	backend    Backend
	limit      int // longest value stored whole; 0 means no limit
	chunkSize  int
	neverChunk bool
	memory     *Memory

	// mu makes this process's keychain calls one at a time: reads never
	// see a chunked value half-written, and when the keychain hangs, one
	// call waits for the deadline while the others then find it given up
	// instead of each leaving a goroutine stuck in it.
	mu sync.Mutex

	broken  atomic.Bool // the keychain has been given up
	stateMu sync.Mutex
	status  Status // guarded by stateMu
}

// Get returns the value stored under key, or ErrNotFound.
func (k *Keychain) Get(key string) (v []byte, err error) {
	k.ready()
	if k.useKeychain(func() error { v, err = k.get(key); return err }) {
		return v, err
	}
	return k.memory.Get(key)
}

// Set stores value under key, replacing any earlier value. If the keychain
// fails during the call, the value is kept in memory and Set returns nil;
// Status tells the difference.
func (k *Keychain) Set(key string, value []byte) (err error) {
	if !utf8.Valid(value) {
		return fmt.Errorf("store: value for key %q is not valid UTF-8 text", key)
	}
	k.ready()
	if k.useKeychain(func() error { err = k.set(key, value); return err }) {
		return err
	}
	return k.memory.Set(key, value)
}

// Delete removes the value stored under key. It returns ErrNotFound when
// there is none.
func (k *Keychain) Delete(key string) (err error) {
	k.ready()
	if k.useKeychain(func() error { err = k.delete(key); return err }) {
		return err
	}
	return k.memory.Delete(key)
}

// Status describes where values are kept. It runs the start-up check if
// no call has run it yet.
func (k *Keychain) Status() Status {
	k.ready()
	k.stateMu.Lock()
	defer k.stateMu.Unlock()
	return k.status
}

// ready resolves the configuration and runs the start-up check, once.
func (k *Keychain) ready() {
	k.once.Do(func() {
		sys := cmp.Or(k.sys, thisHost)
		k.service = cmp.Or(k.Service, DefaultService)
		k.timeout = k.Timeout
		if k.timeout <= 0 || k.timeout > maxTimeout {
			k.timeout = maxTimeout
		}
		k.memory = cmp.Or(k.Fallback, &Memory{})
		switch {
		case k.MaxValueSize < 0:
			k.neverChunk = true
		case k.MaxValueSize > 0:
			k.limit = k.MaxValueSize
		default:
			k.limit = sys.maxValueSize()
		}
		k.chunkSize = cmp.Or(k.limit, defaultChunkSize)

		k.backend = k.Backend
		if k.backend == nil {
			if sys.noSessionBus() {
				k.fallBack("no D-Bus session bus", false)
				return
			}
			k.backend = sys.keyring
		}
		k.probe()
		k.stateMu.Lock()
		if !k.broken.Load() {
			k.status = Status{Backend: sys.keychainName(), Available: true, Writable: true}
		}
		k.stateMu.Unlock()
	})
}

// probe writes, reads back and deletes an entry under probeService, all
// within one deadline.
func (k *Keychain) probe() {
	user := "probe:" + rand.Text()
	const want = "mcp-oauth-proxy keychain probe"
	readable, err := withDeadline(k.timeout, func() (readable bool, err error) {
		if _, err := k.backend.Get(probeService, user); err != nil && !isNotFound(err) {
			return false, err
		}
		if err := k.backend.Set(probeService, user, want); err != nil {
			return true, err
		}
		got, err := k.backend.Get(probeService, user)
		if err == nil && got != want {
			err = errors.New("the probe entry read back differs")
		}
		if derr := k.backend.Delete(probeService, user); err == nil {
			err = derr
		}
		return true, err
	})
	if err != nil {
		reason := err.Error()
		if readable {
			reason = "not writable: " + reason
		}
		k.fallBack(reason, readable)
	}
}

// useKeychain runs f against the keychain under mu unless the keychain has
// been given up. It reports false when the caller must use memory instead:
// the keychain was given up before, or f failed with an unusableError.
func (k *Keychain) useKeychain(f func() error) bool {
	if k.broken.Load() {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.broken.Load() { // given up while this call waited for mu
		return false
	}
	var u *unusableError
	if errors.As(f(), &u) {
		k.fallBack(u.reason, false)
		return false
	}
	return true
}

// fallBack gives up the keychain for good and logs the one warning.
func (k *Keychain) fallBack(reason string, available bool) {
	k.stateMu.Lock()
	first := !k.broken.Load()
	if first {
		k.status = Status{Backend: "memory", Available: available, Reason: reason}
		k.broken.Store(true)
	}
	k.stateMu.Unlock()
	if first {
		k.logger().Warn("keychain unavailable (" + reason + "); tokens stay in memory for this process")
	}
}

func (k *Keychain) logger() *slog.Logger {
	if k.Logger != nil {
		return k.Logger
	}
	return slog.Default()
}

func (k *Keychain) get(key string) ([]byte, error) {
	getKey := func() (string, error) { return k.backend.Get(k.service, key) }
	s, err := k.call(getKey)
	for attempt := 0; ; attempt++ {
		if err != nil {
			return nil, err
		}
		span, chunked, herr := parseChunkHeader(s)
		if !chunked {
			return []byte(s), nil
		}
		if herr != nil {
			return nil, k.damaged(key, herr)
		}
		v, problem, perr := k.getParts(key, span)
		if perr != nil || problem == nil {
			return v, perr
		}
		// Another process may have replaced the value while its parts
		// were read, and deleted them: its header is new then.
		again, err2 := k.call(getKey)
		if attempt == 2 || err2 == nil && again == s {
			return nil, k.damaged(key, problem)
		}
		s, err = again, err2
	}
}

// getParts reads the parts span names and checks them against its sum.
// A missing part or a wrong sum is a problem, not an error.
func (k *Keychain) getParts(key string, span chunkSpan) (v []byte, problem, err error) {
	for i := range span.parts {
		p, err := k.call(func() (string, error) { return k.backend.Get(k.service, partKey(key, span.start+i)) })
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("part %d of %d is missing", i, span.parts), nil
		}
		if err != nil {
			return nil, nil, err
		}
		v = append(v, p...)
	}
	if err := verifyChunks(v, span.sum); err != nil {
		return nil, err, nil
	}
	return v, nil, nil
}

// damaged warns about an unreadable chunked value and reports it absent.
func (k *Keychain) damaged(key string, problem error) error {
	k.logger().Warn("store: chunked keychain value is damaged; treating it as absent",
		"service", k.service, "key", key, "problem", problem.Error())
	return ErrNotFound
}

func (k *Keychain) set(key string, value []byte) error {
	old, err := k.call(func() (string, error) { return k.backend.Get(k.service, key) })
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	oldSpan, _, _ := parseChunkHeader(old) // zero unless a readable header

	whole := !bytes.HasPrefix(value, []byte(chunkPrefix)) && (k.limit == 0 || len(value) <= k.limit)
	wrote := string(value) // what this write leaves under key
	if whole {
		err := k.call0(func() error { return k.backend.Set(k.service, key, wrote) })
		switch {
		case err == nil:
		case errors.Is(err, keyring.ErrSetDataTooBig) && !k.neverChunk:
			whole = false
		case errors.Is(err, keyring.ErrSetDataTooBig):
			return tooLarge(key, value)
		default:
			return err
		}
	}
	if !whole {
		if wrote, err = k.setChunked(key, value, oldSpan); err != nil {
			return err
		}
	}
	if oldSpan.parts == 0 {
		return nil
	}
	// Another process may have written the key since this write read
	// it, placing its parts where the old ones are: they are its to
	// delete then. (The new parts never overlap the old ones; see
	// nextStart.)
	switch cur, err := k.call(func() (string, error) { return k.backend.Get(k.service, key) }); {
	case errors.Is(err, ErrNotFound):
		return nil // deleted meanwhile: the write is over, and so is the value
	case err != nil || cur != wrote:
		return err
	}
	return k.deleteParts(key, oldSpan.start, oldSpan.end())
}

// setChunked writes value in parts and then its header, halving the part
// size while the keychain answers "too big" (on macOS the key length
// counts against the limit too). The parts go where old's are not, so a
// write that stops halfway leaves the old value readable.
func (k *Keychain) setChunked(key string, value []byte, old chunkSpan) (header string, err error) {
	for size := k.chunkSize; ; size /= 2 {
		parts := splitChunks(value, size)
		if len(parts) > maxParts {
			return "", tooLarge(key, value)
		}
		start := nextStart(old, len(parts))
		header := chunkHeader(start, len(parts), value)
		written, err := k.writeChunks(key, start, parts, header)
		if !errors.Is(err, keyring.ErrSetDataTooBig) {
			return header, err
		}
		// The retry may start elsewhere: remove what this attempt wrote.
		if err := k.deleteParts(key, start, start+written); err != nil {
			return "", err
		}
		if size/2 < minChunkSize {
			return "", tooLarge(key, value)
		}
	}
}

// writeChunks writes parts from index start, then header. It returns how
// many parts it wrote.
func (k *Keychain) writeChunks(key string, start int, parts []string, header string) (int, error) {
	for i, p := range parts {
		if err := k.call0(func() error { return k.backend.Set(k.service, partKey(key, start+i), p) }); err != nil {
			return i, err
		}
	}
	return len(parts), k.call0(func() error { return k.backend.Set(k.service, key, header) })
}

// deleteParts deletes parts from..to-1 of key; missing ones are fine.
func (k *Keychain) deleteParts(key string, from, to int) error {
	for i := from; i < to; i++ {
		err := k.call0(func() error { return k.backend.Delete(k.service, partKey(key, i)) })
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

func (k *Keychain) delete(key string) error {
	s, err := k.call(func() (string, error) { return k.backend.Get(k.service, key) })
	if err != nil {
		return err
	}
	if err := k.call0(func() error { return k.backend.Delete(k.service, key) }); err != nil {
		return err
	}
	span, chunked, herr := parseChunkHeader(s)
	if !chunked {
		return nil
	}
	if herr != nil {
		span = chunkSpan{}
	}
	if err := k.deleteParts(key, span.start, span.end()); err != nil {
		return err
	}
	// Parts left by a damaged header or an interrupted write go too: from
	// 0 below the value's parts and from its end, up to the first missing.
	for i := range span.start {
		err := k.call0(func() error { return k.backend.Delete(k.service, partKey(key, i)) })
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return err
		}
	}
	for i := span.end(); i < span.end()+maxParts; i++ {
		err := k.call0(func() error { return k.backend.Delete(k.service, partKey(key, i)) })
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
	}
	return nil
}

func tooLarge(key string, value []byte) error {
	return fmt.Errorf("store: value for key %q (%d bytes) is too large for the keychain: %w",
		key, len(value), keyring.ErrSetDataTooBig)
}

// call runs a keychain call with the deadline and sorts its error into
// ErrNotFound, keyring.ErrSetDataTooBig or *unusableError.
func (k *Keychain) call(f func() (string, error)) (string, error) {
	s, err := withDeadline(k.timeout, f)
	switch {
	case err == nil:
		return s, nil
	case isNotFound(err):
		return "", ErrNotFound
	case errors.Is(err, keyring.ErrSetDataTooBig):
		return "", keyring.ErrSetDataTooBig
	default:
		return "", &unusableError{reason: err.Error()}
	}
}

func (k *Keychain) call0(f func() error) error {
	_, err := k.call(func() (string, error) { return "", f() })
	return err
}

func isNotFound(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, keyring.ErrNotFound)
}

// unusableError means the keychain cannot be used any more.
type unusableError struct{ reason string }

func (e *unusableError) Error() string { return "store: keychain unavailable: " + e.reason }

// withDeadline runs f in a goroutine and waits at most d for it. A call
// that misses the deadline is abandoned; its goroutine ends whenever f
// returns.
func withDeadline[T any](d time.Duration, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1) // buffered: an abandoned goroutine must not block
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.v, r.err
	case <-timer.C:
		var zero T
		return zero, fmt.Errorf("no answer within %v", d)
	}
}
