package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/store"
)

// Key names in fast-agent's keychain layout (service fast-agent-mcp).
const (
	tokensPrefix = "oauth:tokens:"
	clientPrefix = "oauth:client_info:"
	// IndexKey holds a sorted JSON array of every identity with stored
	// credentials; keychains cannot list their entries.
	IndexKey = "oauth:index"
)

// TokensKey returns the key of the token record of identity.
func TokensKey(identity string) string { return tokensPrefix + identity }

// ClientInfoKey returns the key of the client registration of identity.
func ClientInfoKey(identity string) string { return clientPrefix + identity }

// Credentials reads and writes token and client records in a Store, in
// fast-agent's layout, and keeps the identity index up to date. The zero
// value is not usable: set Store.
type Credentials struct {
	Store Store
	// Logger receives index maintenance problems, which never fail a
	// token write. Nil discards them.
	Logger *slog.Logger
}

// indexLocks serialises the index read-modify-write per Store, however
// many Credentials values share it.
var indexLocks sync.Map // Store → *sync.Mutex

func (c *Credentials) indexLock() *sync.Mutex {
	mu, _ := indexLocks.LoadOrStore(c.Store, new(sync.Mutex))
	return mu.(*sync.Mutex)
}

func (c *Credentials) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// Token returns the first token record found under the given identities
// (canonical first, then legacy) and the identity it was found under. It
// returns a nil record and no error when none is stored.
func (c *Credentials) Token(identities ...string) (*Token, string, error) {
	var t Token
	id, err := c.read(tokensPrefix, identities, &t)
	if err != nil || id == "" {
		return nil, "", err
	}
	return &t, id, nil
}

// Client returns the first client registration found under the given
// identities, as Token does.
func (c *Credentials) Client(identities ...string) (*ClientInfo, string, error) {
	var ci ClientInfo
	id, err := c.read(clientPrefix, identities, &ci)
	if err != nil || id == "" {
		return nil, "", err
	}
	return &ci, id, nil
}

func (c *Credentials) read(prefix string, identities []string, v any) (string, error) {
	for _, id := range identities {
		b, err := c.Store.Get(prefix + id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("oauth: read %s%s: %w", prefix, id, err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			return "", fmt.Errorf("oauth: read %s%s: %w", prefix, id, err)
		}
		return id, nil
	}
	return "", nil
}

// SaveToken stores t under identity and adds identity to the index.
func (c *Credentials) SaveToken(identity string, t *Token) error {
	return c.write(tokensPrefix, identity, t)
}

// SaveClient stores ci under identity and adds identity to the index.
func (c *Credentials) SaveClient(identity string, ci *ClientInfo) error {
	return c.write(clientPrefix, identity, ci)
}

func (c *Credentials) write(prefix, identity string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("oauth: encode %s%s: %w", prefix, identity, err)
	}
	if err := c.Store.Set(prefix+identity, b); err != nil {
		return fmt.Errorf("oauth: save %s%s: %w", prefix, identity, err)
	}
	if err := c.updateIndex(func(ids []string) []string {
		if slices.Contains(ids, identity) {
			return nil
		}
		return append(ids, identity)
	}); err != nil {
		c.logger().Warn("could not add identity to the index", "identity", identity, "err", err)
	}
	return nil
}

// DeleteToken removes the token record of identity, keeping the client
// registration and the index entry. Deleting a missing record is not an
// error.
func (c *Credentials) DeleteToken(identity string) error {
	return c.delete(TokensKey(identity))
}

// DeleteClient removes the client registration of identity.
func (c *Credentials) DeleteClient(identity string) error {
	return c.delete(ClientInfoKey(identity))
}

func (c *Credentials) delete(key string) error {
	if err := c.Store.Delete(key); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("oauth: delete %s: %w", key, err)
	}
	return nil
}

// Forget removes the tokens, client registration and index entry of each
// identity, and returns the keys it removed.
func (c *Credentials) Forget(identities ...string) (removed []string, err error) {
	var errs []error
	for _, id := range identities {
		for _, key := range []string{TokensKey(id), ClientInfoKey(id)} {
			switch err := c.Store.Delete(key); {
			case err == nil:
				removed = append(removed, key)
			case !errors.Is(err, store.ErrNotFound):
				errs = append(errs, fmt.Errorf("oauth: delete %s: %w", key, err))
			}
		}
	}
	if err := c.updateIndex(func(ids []string) []string {
		kept := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(identities, id) })
		if len(kept) == len(ids) {
			return nil
		}
		return kept
	}); err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// ErrIndexUnreadable is reported (wrapped) when the index holds something
// other than a JSON list of identities.
var ErrIndexUnreadable = errors.New("oauth: the identity index (" + IndexKey + ") is not a JSON list")

// Identities returns the identities listed in the index.
func (c *Credentials) Identities() ([]string, error) {
	return c.readIndex()
}

func (c *Credentials) readIndex() ([]string, error) {
	b, err := c.Store.Get(IndexKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("oauth: read %s: %w", IndexKey, err)
	}
	var ids []string
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIndexUnreadable, err)
	}
	return ids, nil
}

// updateIndex applies edit to the index under the per-store lock; edit
// returns nil when nothing changes. An index that is not JSON is replaced
// only by an edit that adds to it (it lists nothing that can be read any
// more); one the store fails to return is never written over.
func (c *Credentials) updateIndex(edit func([]string) []string) error {
	mu := c.indexLock()
	mu.Lock()
	defer mu.Unlock()
	b, err := c.Store.Get(IndexKey)
	var ids []string
	switch {
	case errors.Is(err, store.ErrNotFound):
		err = nil // the first identity
	case err != nil:
		return fmt.Errorf("oauth: read %s: %w", IndexKey, err)
	default:
		if jerr := json.Unmarshal(b, &ids); jerr != nil {
			err = fmt.Errorf("oauth: read %s: %w", IndexKey, jerr)
			ids = nil
		}
	}
	next := edit(ids)
	if next == nil {
		return nil
	}
	if err != nil {
		c.logger().Warn("replacing an unreadable identity index", "err", err)
	}
	slices.Sort(next)
	next = slices.Compact(next)
	b, _ = json.Marshal(next)
	if err := c.Store.Set(IndexKey, b); err != nil {
		return fmt.Errorf("oauth: write %s: %w", IndexKey, err)
	}
	return nil
}
