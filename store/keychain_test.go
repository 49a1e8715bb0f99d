package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/zalando/go-keyring"
)

// callBound is how long any call may take in tests whose keychain hangs:
// far above the 200ms deadline they use, so a loaded machine does not
// make them flaky, and far below a hang.
const callBound = 10 * time.Second

const fallbackWarning = "keychain unavailable ("

func TestKeychainHungBackend(t *testing.T) {
	tests := []struct {
		name        string
		hungService string
	}{
		{"keychain calls hang", testService},
		{"probe hangs", probeService},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			t.Cleanup(func() { close(release) }) // ends the abandoned goroutines
			f := &fakeBackend{hook: func(op, service, user string) error {
				if service == tc.hungService {
					<-release
				}
				return nil
			}}
			k, log := newFakeKeychain(f)
			k.Timeout = 200 * time.Millisecond

			const n = 50
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					key, want := fmt.Sprintf("key-%d", i), fmt.Appendf(nil, `{"n":%d}`, i)
					start := time.Now()
					if err := k.Set(key, want); err != nil {
						t.Errorf("Set(%q) = %v, want nil (value kept in memory)", key, err)
					}
					got, err := k.Get(key)
					if err != nil || string(got) != string(want) {
						t.Errorf("Get(%q) = %q, %v; want %q from memory", key, got, err, want)
					}
					if d := time.Since(start); d > callBound {
						t.Errorf("Set+Get took %v with a hung keychain", d)
					}
				})
			}
			wg.Wait()

			if got := log.count(fallbackWarning); got != 1 {
				t.Errorf("%d fallback warnings logged, want 1:\n%s", got, log)
			}
			want := Status{Backend: "memory", Reason: "no answer within 200ms"}
			if diff := cmp.Diff(want, k.Status()); diff != "" {
				t.Errorf("Status (-want +got):\n%s", diff)
			}
			// Only the call that hit the deadline reached the hung keychain:
			// hung goroutines do not pile up.
			hung := len(f.opsFor(tc.hungService))
			if hung != 1 {
				t.Errorf("%d calls reached the hung service, want 1: %q", hung, f.opsFor(tc.hungService))
			}
			// Later calls never touch the keychain again.
			before := len(f.opsFor(testService)) + len(f.opsFor(probeService))
			mustSet(t, k, "later", []byte(tokenJSON))
			wantValue(t, k, "later", []byte(tokenJSON))
			if err := k.Delete("later"); err != nil {
				t.Errorf("Delete: %v", err)
			}
			if after := len(f.opsFor(testService)) + len(f.opsFor(probeService)); after != before {
				t.Errorf("%d keychain calls after the fallback, want 0", after-before)
			}
		})
	}
}

// A keychain that hangs while reads are already under way: only one of
// them waits in it, the others find it given up.
func TestKeychainHangsDuringConcurrentReads(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var hang atomic.Bool
	var reached atomic.Int32
	f := &fakeBackend{hook: func(op, service, user string) error {
		if hang.Load() && service == testService {
			reached.Add(1)
			<-release
		}
		return nil
	}}
	k, _ := newFakeKeychain(f)
	k.Timeout = 200 * time.Millisecond
	if _, err := k.Get("warm-up"); !errors.Is(err, ErrNotFound) || k.Status().Backend == "memory" {
		t.Fatalf("before the hang: Get = %v, status %+v", err, k.Status())
	}

	hang.Store(true)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			start := time.Now()
			if _, err := k.Get(fmt.Sprintf("key-%d", i)); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get = %v, want ErrNotFound from memory", err)
			}
			if d := time.Since(start); d > callBound {
				t.Errorf("Get took %v with a hung keychain", d)
			}
		})
	}
	wg.Wait()
	if n := reached.Load(); n != 1 {
		t.Errorf("%d calls reached the hung keychain, want 1", n)
	}
}

// Many calls at once against a keychain that fails: one warning, and only
// the first call reaches the keychain.
func TestKeychainConcurrentFailuresWarnOnce(t *testing.T) {
	t.Parallel()
	const n = 50
	errLocked := errors.New("failed to unlock correct collection '/org/freedesktop/secrets/collection/login'")
	var reached atomic.Int32
	f := &fakeBackend{hook: func(op, service, user string) error {
		if service != testService {
			return nil
		}
		reached.Add(1)
		return errLocked
	}}
	k, log := newFakeKeychain(f)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := k.Get(fmt.Sprintf("key-%d", i)); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get = %v, want ErrNotFound from memory", err)
			}
		})
	}
	wg.Wait()
	if got := log.count(fallbackWarning); got != 1 {
		t.Errorf("%d fallback warnings after %d failing calls, want 1:\n%s", got, n, log)
	}
	if st := k.Status(); st.Reason != errLocked.Error() {
		t.Errorf("Status.Reason = %q, want %q", st.Reason, errLocked)
	}
	if got := reached.Load(); got != 1 {
		t.Errorf("%d calls reached the failing keychain, want 1", got)
	}
}

func TestKeychainProbeFailure(t *testing.T) {
	errDBus := errors.New("The name org.freedesktop.secrets was not provided by any .service files")
	tests := []struct {
		name   string
		failOp string // the probe call that fails
		want   Status
	}{
		{"read fails", "get", Status{Backend: "memory", Reason: errDBus.Error()}},
		{"write fails", "set", Status{Backend: "memory", Available: true, Reason: "not writable: " + errDBus.Error()}},
		{"delete fails", "delete", Status{Backend: "memory", Available: true, Reason: "not writable: " + errDBus.Error()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeBackend{hook: func(op, service, user string) error {
				if service == probeService && op == tc.failOp {
					return errDBus
				}
				return nil
			}}
			k, log := newFakeKeychain(f)
			mem := new(Memory)
			k.Fallback = mem

			for i := range 10 {
				key := fmt.Sprintf("key-%d", i)
				mustSet(t, k, key, []byte(tokenJSON))
				wantValue(t, k, key, []byte(tokenJSON))
				wantValue(t, mem, key, []byte(tokenJSON)) // it went to Fallback
			}
			if err := k.Delete("key-0"); err != nil {
				t.Errorf("Delete: %v", err)
			}
			wantAbsent(t, k, "key-0")

			if diff := cmp.Diff(tc.want, k.Status()); diff != "" {
				t.Errorf("Status (-want +got):\n%s", diff)
			}
			if got := log.count(fallbackWarning); got != 1 {
				t.Errorf("%d fallback warnings logged, want 1:\n%s", got, log)
			}
			if !strings.Contains(log.String(), "tokens stay in memory for this process") {
				t.Errorf("warning does not say where tokens go:\n%s", log)
			}
			if ops := f.opsFor(testService); len(ops) != 0 {
				t.Errorf("calls reached the keychain service after a failed probe: %q", ops)
			}
		})
	}
}

func TestKeychainCallErrorFallsBack(t *testing.T) {
	errLocked := errors.New("failed to unlock correct collection '/org/freedesktop/secrets/aliases/default'")
	big := bigValue(10 << 10)
	tests := []struct {
		name    string
		failOn  func(op, user string) bool
		key     string
		value   []byte
		prepare func(t *testing.T, k *Keychain) // runs while the keychain works
	}{
		{
			name:   "every call fails",
			failOn: func(op, user string) bool { return true },
			key:    "k", value: []byte(tokenJSON),
		},
		{
			name:   "chunked write fails halfway",
			failOn: func(op, user string) bool { return op == "set" && user == "k#2" },
			key:    "k", value: big,
		},
		{
			name:   "removing old parts fails",
			failOn: func(op, user string) bool { return op == "delete" && user == "k#3" },
			key:    "k", value: []byte(tokenJSON),
			prepare: func(t *testing.T, k *Keychain) {
				mustSet(t, k, "k", big)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var failing sync.Mutex
			fail := false
			f := &fakeBackend{hook: func(op, service, user string) error {
				failing.Lock()
				defer failing.Unlock()
				if fail && service == testService && tc.failOn(op, user) {
					return errLocked
				}
				return nil
			}}
			k, log := newFakeKeychain(f)
			k.MaxValueSize = 2000
			if tc.prepare != nil {
				tc.prepare(t, k)
			}
			failing.Lock()
			fail = true
			failing.Unlock()

			if err := k.Set(tc.key, tc.value); err != nil {
				t.Fatalf("Set = %v, want nil (value kept in memory)", err)
			}
			wantValue(t, k, tc.key, tc.value)
			want := Status{Backend: "memory", Reason: errLocked.Error()}
			if diff := cmp.Diff(want, k.Status()); diff != "" {
				t.Errorf("Status (-want +got):\n%s", diff)
			}
			if got := log.count(fallbackWarning); got != 1 {
				t.Errorf("%d fallback warnings logged, want 1:\n%s", got, log)
			}
		})
	}
}

var headerRE = regexp.MustCompile(`^mcp-oauth-proxy-chunked:(?:v1:|v2:([0-9]+):)([0-9]+):([0-9a-f]{64})$`)

// chunkedEntries checks the raw layout of a chunked value under key and
// returns its parts.
func chunkedEntries(t *testing.T, f *fakeBackend, key string, value []byte, maxPart int) []string {
	t.Helper()
	header, ok := f.raw(testService, key)
	m := headerRE.FindStringSubmatch(header)
	if !ok || m == nil {
		t.Fatalf("entry %q = %q, want a chunk header", key, header)
	}
	start, _ := strconv.Atoi(m[1]) // "" (v1) is 0
	n, _ := strconv.Atoi(m[2])
	sum := sha256.Sum256(value)
	if m[3] != hex.EncodeToString(sum[:]) {
		t.Errorf("header hash %s, want the SHA-256 of the value", m[3])
	}
	var parts []string
	for i := range n {
		p, ok := f.raw(testService, partKey(key, start+i))
		if !ok {
			t.Fatalf("part %d of %d missing", i, n)
		}
		if len(p) > maxPart {
			t.Errorf("part %d is %d bytes, want at most %d", i, len(p), maxPart)
		}
		parts = append(parts, p)
	}
	if got := strings.Join(parts, ""); got != string(value) {
		t.Errorf("parts joined are %d bytes, differ from the %d-byte value", len(got), len(value))
	}
	return parts
}

func TestKeychainChunkLayout(t *testing.T) {
	big := bigValue(10 << 10)
	tests := []struct {
		name         string
		maxSize      int // of the fake
		maxValueSize int
		wantSets     func(parts int) []string // all Set calls in order
	}{
		{
			name: "over MaxValueSize", maxSize: 2560, maxValueSize: 2560,
			wantSets: func(n int) []string {
				var sets []string
				for i := range n {
					sets = append(sets, "set "+partKey("k", i))
				}
				return append(sets, "set k")
			},
		},
		{
			name: "ErrSetDataTooBig", maxSize: 2560, maxValueSize: 0,
			wantSets: func(n int) []string {
				sets := []string{"set k"} // rejected whole
				for i := range n {
					sets = append(sets, "set "+partKey("k", i))
				}
				return append(sets, "set k")
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeBackend{maxSize: tc.maxSize}
			k, log := newFakeKeychain(f)
			k.MaxValueSize = tc.maxValueSize
			checkKeychainInUse(t, k, log)

			mustSet(t, k, "k", big)
			parts := chunkedEntries(t, f, "k", big, 2560)
			for i, p := range parts {
				if !strings.HasPrefix(string(big), strings.Join(parts[:i], "")+p) {
					t.Errorf("part %d is out of place", i)
				}
			}
			var sets []string
			for _, op := range f.opsFor(testService) {
				if strings.HasPrefix(op, "set ") {
					sets = append(sets, op)
				}
			}
			// The header goes last, so a reader never sees it before its parts.
			if diff := cmp.Diff(tc.wantSets(len(parts)), sets); diff != "" {
				t.Errorf("Set calls (-want +got):\n%s", diff)
			}
			wantValue(t, k, "k", big)
		})
	}
}

func TestKeychainChunkSizes(t *testing.T) {
	t.Parallel()
	f := &fakeBackend{}
	k, log := newFakeKeychain(f)
	k.MaxValueSize = 2000
	checkKeychainInUse(t, k, log)

	steps := []struct {
		value     []byte
		wantUsers []string
	}{
		{bigValue(10 << 10), []string{"k", "k#0", "k#1", "k#2", "k#3", "k#4", "k#5"}},
		{bigValue(3000), []string{"k", "k#6", "k#7"}},                                  // past the old parts, which go
		{bigValue(4000), []string{"k", "k#0", "k#1", "k#2"}},                           // below them when that fits
		{[]byte(tokenJSON), []string{"k"}},                                             // whole again
		{bigValue(5000), []string{"k", "k#0", "k#1", "k#2"}},                           // grows again
		{[]byte(chunkHeaderV1 + "1:" + strings.Repeat("0", 64)), []string{"k", "k#3"}}, // header look-alike
	}
	for i, step := range steps {
		mustSet(t, k, "k", step.value)
		if diff := cmp.Diff(step.wantUsers, f.users(testService)); diff != "" {
			t.Errorf("step %d: entries (-want +got):\n%s", i, diff)
		}
		if len(step.wantUsers) > 1 {
			chunkedEntries(t, f, "k", step.value, 2000)
		} else if raw, _ := f.raw(testService, "k"); raw != string(step.value) {
			t.Errorf("step %d: entry = %q, want the value verbatim", i, raw)
		}
		wantValue(t, k, "k", step.value)
	}
	if err := k.Delete("k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if users := f.users(testService); len(users) != 0 {
		t.Errorf("entries left after Delete: %q", users)
	}
}

// A rewrite of a chunked value that stops halfway, whatever the reason,
// leaves the old value readable: the new parts never overwrite the old.
func TestKeychainFailedChunkedRewriteKeepsOldValue(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"keychain fails", errors.New("failed to unlock collection")},
		{"too big", keyring.ErrSetDataTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			old, newer := bigValue(5000), bigValue(7000)[1000:]
			var armed atomic.Bool
			var partSets atomic.Int32
			f := &fakeBackend{hook: func(op, service, user string) error {
				if armed.Load() && op == "set" && user != "k" && partSets.Add(1) >= 2 {
					return tc.err
				}
				return nil
			}}
			k, _ := newFakeKeychain(f)
			k.MaxValueSize = 2000
			mustSet(t, k, "k", old)
			armed.Store(true)
			err := k.Set("k", newer)
			armed.Store(false)
			if errors.Is(tc.err, keyring.ErrSetDataTooBig) {
				if err == nil {
					t.Fatal("Set of a value the keychain keeps refusing succeeded")
				}
				wantValue(t, k, "k", old) // this process still reads the old value
			}
			next, _ := newFakeKeychain(f) // the next process
			next.MaxValueSize = 2000
			wantValue(t, next, "k", old)
		})
	}
}

// Parts a "too big" attempt wrote before the part size was halved, and
// strays below a value's first part, go with Delete: nothing of a token
// stays behind in the keychain.
func TestKeychainDeleteLeavesNoParts(t *testing.T) {
	t.Parallel()
	const size = 600
	f := &fakeBackend{maxEntry: len("k#0") + size} // "k#0"… fit whole parts, "k#10"… do not
	k, _ := newFakeKeychain(f)
	k.MaxValueSize = size
	// An earlier value whose parts start at 15, with a stray part below.
	f.put(testService, "k", chunkHeader(15, 1, []byte("x")))
	f.put(testService, partKey("k", 15), "x")
	f.put(testService, partKey("k", 0), "stray")
	value := []byte(strings.Repeat("a", 12*size))
	mustSet(t, k, "k", value)
	wantValue(t, k, "k", value)
	if err := k.Delete("k"); err != nil {
		t.Fatal(err)
	}
	if users := f.users(testService); len(users) != 0 {
		t.Errorf("entries left after Delete: %q", users)
	}
}

func TestKeychainDamagedChunks(t *testing.T) {
	big := bigValue(5000) // three parts of at most 2000 bytes
	sum := sha256.Sum256(big)
	tests := []struct {
		name   string
		damage func(f *fakeBackend)
	}{
		{"missing part", func(f *fakeBackend) {
			if err := f.Delete(testService, "k#1"); err != nil {
				panic(err)
			}
		}},
		{"missing last part", func(f *fakeBackend) {
			if err := f.Delete(testService, "k#2"); err != nil {
				panic(err)
			}
		}},
		{"altered part", func(f *fakeBackend) {
			p, _ := f.raw(testService, "k#1")
			f.put(testService, "k#1", "X"+p[1:])
		}},
		{"part from another value", func(f *fakeBackend) {
			f.put(testService, "k#1", string(bigValue(2000)[:1500]))
		}},
		{"header counts more parts", func(f *fakeBackend) {
			f.put(testService, "k", chunkHeader(0, 4, big))
		}},
		{"header counts fewer parts", func(f *fakeBackend) {
			f.put(testService, "k", "mcp-oauth-proxy-chunked:v1:2:"+hex.EncodeToString(sum[:]))
		}},
		{"malformed header", func(f *fakeBackend) {
			f.put(testService, "k", "mcp-oauth-proxy-chunked:v1:three:"+hex.EncodeToString(sum[:]))
		}},
		{"unknown header version", func(f *fakeBackend) {
			f.put(testService, "k", "mcp-oauth-proxy-chunked:v3:0:3:"+hex.EncodeToString(sum[:]))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeBackend{}
			k, log := newFakeKeychain(f)
			k.MaxValueSize = 2000
			mustSet(t, k, "k", big)
			chunkedEntries(t, f, "k", big, 2000)
			tc.damage(f)

			wantAbsent(t, k, "k")
			if n := log.count("chunked keychain value is damaged"); n != 1 {
				t.Errorf("%d damage warnings, want 1:\n%s", n, log)
			}
			if !strings.Contains(log.String(), "key=k ") {
				t.Errorf("warning does not name the key:\n%s", log)
			}
			if st := k.Status(); st.Backend == "memory" {
				t.Errorf("a damaged value made the keychain be given up: %s", st.Reason)
			}
			// Delete removes what is left; afterwards a new value works.
			if err := k.Delete("k"); err != nil {
				t.Errorf("Delete: %v", err)
			}
			if users := f.users(testService); len(users) != 0 {
				t.Errorf("entries left after Delete: %q", users)
			}
			mustSet(t, k, "k", big)
			wantValue(t, k, "k", big)
		})
	}
}

func TestKeychainStoresSmallValuesVerbatim(t *testing.T) {
	t.Parallel()
	f := &fakeBackend{maxSize: 2560}
	logger, log := newTestLogger()
	k := &Keychain{Backend: f, Logger: logger, sys: fakeHost(nil)} // Service "" → fast-agent-mcp
	checkKeychainInUse(t, k, log)

	// What we write, fast-agent reads verbatim.
	const key = "oauth:tokens:https://mcp.example.com/mcp"
	mustSet(t, k, key, []byte(tokenJSON))
	if raw, ok := f.raw(DefaultService, key); raw != tokenJSON {
		t.Errorf("raw entry = %q, %v; want the JSON verbatim", raw, ok)
	}
	// What fast-agent writes, we read.
	const faKey = "oauth:client_info:https://mcp.example.com/mcp"
	const clientInfo = `{"redirect_uris":["http://localhost:3030/callback"],"client_id":"abc","client_secret":null}`
	f.put(DefaultService, faKey, clientInfo)
	wantValue(t, k, faKey, []byte(clientInfo))
	// Exactly 2560 bytes is still one entry.
	edge := []byte(strings.Repeat("x", 2560))
	mustSet(t, k, "edge", edge)
	if raw, _ := f.raw(DefaultService, "edge"); raw != string(edge) {
		t.Errorf("a 2560-byte value was not stored whole")
	}
}

func TestKeychainSetErrors(t *testing.T) {
	tests := []struct {
		name         string
		maxSize      int
		maxValueSize int
		value        []byte
		wantIs       error
		wantMsg      string
	}{
		{"invalid UTF-8", 0, 0, []byte{'{', 0xff, '}'}, nil, `store: value for key "k" is not valid UTF-8 text`},
		{"too big and never chunk", 2560, -1, []byte(strings.Repeat("x", 3000)), keyring.ErrSetDataTooBig, `store: value for key "k" (3000 bytes) is too large for the keychain`},
		{"too big even in parts", 100, 0, []byte(strings.Repeat("x", 3000)), keyring.ErrSetDataTooBig, `store: value for key "k" (3000 bytes) is too large for the keychain`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeBackend{maxSize: tc.maxSize}
			k, log := newFakeKeychain(f)
			k.MaxValueSize = tc.maxValueSize
			checkKeychainInUse(t, k, log)

			err := k.Set("k", tc.value)
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantMsg) {
				t.Errorf("Set = %v, want an error starting %q", err, tc.wantMsg)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("Set = %v, want errors.Is %v", err, tc.wantIs)
			}
			wantAbsent(t, k, "k")
			if _, ok := f.raw(testService, "k"); ok {
				t.Errorf("an entry was stored")
			}
		})
	}
}

func TestKeychainPlatforms(t *testing.T) {
	tests := []struct {
		goos       string
		wantName   string
		wholeLimit int // 0: none
	}{
		{"linux", "keychain (Secret Service)", 0},
		{"freebsd", "keychain (Secret Service)", 0},
		{"darwin", "keychain (macOS)", 2000},
		{"windows", "keychain (Windows Credential Manager)", 2560},
	}
	for _, tc := range tests {
		t.Run(tc.goos, func(t *testing.T) {
			t.Parallel()
			f := &fakeBackend{}
			k, log := newFakeKeychain(f)
			k.sys = fakeHost(nil)
			k.sys.goos = tc.goos
			checkKeychainInUse(t, k, log)

			want := Status{Backend: tc.wantName, Available: true, Writable: true}
			if diff := cmp.Diff(want, k.Status()); diff != "" {
				t.Errorf("Status (-want +got):\n%s", diff)
			}
			if probes := f.opsFor(probeService); len(probes) != 4 {
				t.Errorf("probe calls = %q, want get, set, get, delete", probes)
			}
			if left := f.users(probeService); len(left) != 0 {
				t.Errorf("the probe left entries behind: %q", left)
			}
			size := tc.wholeLimit
			if size == 0 {
				size = 100 << 10 // Secret Service: never chunked
			}
			whole, over := []byte(strings.Repeat("w", size)), []byte(strings.Repeat("o", size+1))
			mustSet(t, k, "whole", whole)
			mustSet(t, k, "over", over)
			if raw, _ := f.raw(testService, "whole"); raw != string(whole) {
				t.Errorf("a %d-byte value was not stored whole", size)
			}
			raw, _ := f.raw(testService, "over")
			if chunked := strings.HasPrefix(raw, chunkPrefix); chunked != (tc.wholeLimit != 0) {
				t.Errorf("a %d-byte value chunked = %v, want %v", size+1, chunked, tc.wholeLimit != 0)
			}
			wantValue(t, k, "over", over)
		})
	}
}

func TestKeychainTimeout(t *testing.T) {
	tests := []struct {
		timeout, want time.Duration
	}{
		{0, 5 * time.Second},
		{-time.Second, 5 * time.Second},
		{200 * time.Millisecond, 200 * time.Millisecond},
		{5 * time.Second, 5 * time.Second},
		{time.Hour, 5 * time.Second},
	}
	for _, tc := range tests {
		k, _ := newFakeKeychain(&fakeBackend{})
		k.Timeout = tc.timeout
		k.Status()
		if k.timeout != tc.want {
			t.Errorf("Timeout %v: deadline %v, want %v", tc.timeout, k.timeout, tc.want)
		}
	}
}

func TestKeychainSessionBusCheck(t *testing.T) {
	const uid = 1000
	tests := []struct {
		name      string
		goos      string
		env       map[string]string
		files     map[string]string // path → content; "" with statErr below
		statErr   error             // returned by stat for paths not in files
		wantNoBus bool
	}{
		{name: "nothing", goos: "linux", wantNoBus: true},
		{name: "bus address", goos: "linux", env: map[string]string{"DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus"}},
		{name: "empty bus address", goos: "linux", env: map[string]string{"DBUS_SESSION_BUS_ADDRESS": ""}, wantNoBus: true},
		{name: "autolaunch address", goos: "linux", env: map[string]string{"DBUS_SESSION_BUS_ADDRESS": "autolaunch:"}, wantNoBus: true},
		{name: "bus socket", goos: "linux", files: map[string]string{"/run/user/1000/bus": ""}},
		{name: "bus socket of another user", goos: "linux", files: map[string]string{"/run/user/1001/bus": ""}, wantNoBus: true},
		{name: "unreadable runtime dir", goos: "linux", statErr: errors.New("permission denied")},
		{name: "dbus-session file", goos: "linux", files: map[string]string{"/run/user/1000/dbus-session": "DBUS_SESSION_BUS_ADDRESS=unix:abstract=/tmp/dbus-x\n"}},
		{name: "dbus-session file without address", goos: "linux", files: map[string]string{"/run/user/1000/dbus-session": "garbage"}, wantNoBus: true},
		{name: "other unix", goos: "openbsd", wantNoBus: true},
		{name: "macOS", goos: "darwin"},
		{name: "windows", goos: "windows"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			osKeychain := &fakeBackend{}
			sys := fakeHost(osKeychain)
			sys.goos = tc.goos
			sys.getuid = func() int { return uid }
			sys.lookupEnv = func(name string) (string, bool) { v, ok := tc.env[name]; return v, ok }
			sys.stat = func(path string) (fs.FileInfo, error) {
				if _, ok := tc.files[path]; ok {
					return nil, nil
				}
				if tc.statErr != nil {
					return nil, tc.statErr
				}
				return nil, fs.ErrNotExist
			}
			sys.readFile = func(path string) ([]byte, error) {
				if c, ok := tc.files[path]; ok {
					return []byte(c), nil
				}
				return nil, fs.ErrNotExist
			}
			logger, log := newTestLogger()
			k := &Keychain{Logger: logger, sys: sys} // Backend nil: the OS keychain

			mustSet(t, k, "k", []byte(tokenJSON))
			wantValue(t, k, "k", []byte(tokenJSON))
			st := k.Status()
			calls := len(osKeychain.opsFor(probeService)) + len(osKeychain.opsFor(DefaultService))
			if tc.wantNoBus {
				want := Status{Backend: "memory", Reason: "no D-Bus session bus"}
				if diff := cmp.Diff(want, st); diff != "" {
					t.Errorf("Status (-want +got):\n%s", diff)
				}
				if calls != 0 {
					t.Errorf("the OS keychain was called %d times without a session bus", calls)
				}
				if n := log.count("keychain unavailable (no D-Bus session bus); tokens stay in memory for this process"); n != 1 {
					t.Errorf("%d fallback warnings, want 1:\n%s", n, log)
				}
				return
			}
			if st.Backend == "memory" {
				t.Errorf("Status = %+v, want the keychain in use", st)
			}
			if raw, _ := osKeychain.raw(DefaultService, "k"); raw != tokenJSON {
				t.Errorf("the OS keychain holds %q, want the value", raw)
			}
			if probes := osKeychain.opsFor(probeService); !slices.ContainsFunc(probes, func(op string) bool { return strings.HasPrefix(op, "set probe:") }) {
				t.Errorf("no probe write under %s: %q", probeService, probes)
			}
		})
	}
}

func TestMemoryStatus(t *testing.T) {
	want := Status{Backend: "memory", Reason: "memory store selected; nothing is persisted"}
	if diff := cmp.Diff(want, new(Memory).Status()); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}
}

// Two processes on one chunked key: a read that overlaps another
// process's rewrite (which deletes the parts the read is after) reads the
// new value instead of taking the key for damaged, and a rewrite that
// another process's write overtakes leaves that write's parts alone.
func TestKeychainChunkedRace(t *testing.T) {
	v0, v1, v2 := bigValue(5000), bigValue(7000), bigValue(4000)
	newPair := func(t *testing.T) (f *fakeBackend, a, b *Keychain) {
		f = &fakeBackend{}
		a, logA := newFakeKeychain(f)
		b, logB := newFakeKeychain(f)
		a.MaxValueSize, b.MaxValueSize = 2000, 2000
		checkKeychainInUse(t, a, logA)
		checkKeychainInUse(t, b, logB)
		mustSet(t, a, "k", v0)
		return f, a, b
	}
	var armed atomic.Bool
	t.Run("read during a rewrite", func(t *testing.T) {
		f, a, b := newPair(t)
		armed.Store(true)
		f.hook = func(op, _, user string) error {
			if op == "get" && user == partKey("k", 1) && armed.CompareAndSwap(true, false) {
				mustSet(t, a, "k", v1) // deletes the parts b is reading
			}
			return nil
		}
		wantValue(t, b, "k", v1)
	})
	t.Run("read during a deletion", func(t *testing.T) {
		f, a, b := newPair(t)
		armed.Store(true)
		f.hook = func(op, _, user string) error {
			if op == "get" && user == partKey("k", 1) && armed.CompareAndSwap(true, false) {
				if err := a.Delete("k"); err != nil {
					t.Error(err)
				}
			}
			return nil
		}
		if v, err := b.Get("k"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get during a deletion = %q, %v; want ErrNotFound", v, err)
		}
	})
	// afterHeader runs then once, right after the next write of k's
	// header and before the writer's next call.
	afterHeader := func(f *fakeBackend, then func()) {
		armed.Store(true)
		var headerSet bool
		f.hook = func(op, _, user string) error {
			if !armed.Load() {
				return nil
			}
			if headerSet && armed.CompareAndSwap(true, false) {
				then()
			}
			headerSet = headerSet || op == "set" && user == "k"
			return nil
		}
	}
	t.Run("write, then a deletion", func(t *testing.T) {
		f, a, b := newPair(t)
		afterHeader(f, func() {
			if err := b.Delete("k"); err != nil {
				t.Error(err)
			}
		})
		if err := a.Set("k", v1); err != nil {
			t.Errorf("Set = %v; the write succeeded, another process deleted the key after it", err)
		}
	})
	t.Run("write overtaken by another", func(t *testing.T) {
		f, a, b := newPair(t)
		// Before a deletes v0's parts [0,3), b writes v2 there: 3 parts
		// fit below a's parts [3,7).
		afterHeader(f, func() { mustSet(t, b, "k", v2) })
		mustSet(t, a, "k", v1)
		if armed.Load() {
			t.Fatal("b never wrote")
		}
		wantValue(t, a, "k", v2)
	})
}
