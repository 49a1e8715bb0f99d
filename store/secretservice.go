//go:build (dragonfly && cgo) || (freebsd && cgo) || linux || netbsd || openbsd

package store

import (
	"errors"
	"fmt"
	"slices"

	dbus "github.com/godbus/dbus/v5"
	"github.com/zalando/go-keyring"
	ss "github.com/zalando/go-keyring/secret_service"
)

// pythonKeyringApp is the application attribute Python keyring, which
// fast-agent uses, puts on every item it writes.
const pythonKeyringApp = "Python keyring library"

// secretService is the Secret Service through go-keyring's D-Bus client,
// with the items laid out as Python keyring lays them out.
//
// go-keyring's own functions write items without Python keyring's
// application attribute, and read and delete only the first of several
// items for a key. With fast-agent writing the same keys, a Secret Service
// replace then missed the other program's item: two items per key, each
// program reading either one, and a deletion that the other survived.
// Here a write leaves exactly one item per key, with Python keyring's
// attributes; a read takes the most recently modified item; a deletion
// removes them all.
type secretService struct{}

func newOSKeyring() Backend { return secretService{} }

// open connects and unlocks the collection go-keyring uses: "login", or
// the default alias (where Python keyring writes) when there is none.
func (secretService) open() (*ss.SecretService, dbus.BusObject, error) {
	svc, err := ss.NewSecretService()
	if err != nil {
		return nil, nil, err
	}
	c := svc.GetLoginCollection()
	if err := svc.Unlock(c.Path()); err != nil {
		return nil, nil, err
	}
	return svc, c, nil
}

func itemQuery(service, user string) map[string]string {
	return map[string]string{"service": service, "username": user}
}

func (s secretService) Get(service, user string) (string, error) {
	svc, c, err := s.open()
	if err != nil {
		return "", err
	}
	var session dbus.BusObject // opened once there is something to read
	defer func() {
		if session != nil {
			svc.Close(session)
		}
	}()
	// An item another process deletes between the search and the read
	// is looked for again: that process may have written a new one.
	for attempt := 0; ; attempt++ {
		items, err := svc.SearchItems(c, itemQuery(service, user))
		if err != nil {
			return "", err
		}
		if len(items) == 0 {
			return "", keyring.ErrNotFound
		}
		if session == nil {
			if session, err = svc.OpenSession(); err != nil {
				return "", err
			}
		}
		item := newestItem(svc, items)
		err = svc.Unlock(item)
		var secret *ss.Secret
		if err == nil {
			secret, err = svc.GetSecret(item, session.Path())
		}
		switch {
		case err == nil:
			return string(secret.Value), nil
		case !vanished(err):
			return "", err
		case attempt == 2:
			return "", keyring.ErrNotFound
		}
	}
}

// vanished reports whether err says that an item found by a search no
// longer exists: another process deleted it.
func vanished(err error) bool {
	var e dbus.Error // godbus reports a call's error by value
	if !errors.As(err, &e) {
		return false
	}
	switch e.Name {
	case "org.freedesktop.DBus.Error.UnknownObject", "org.freedesktop.DBus.Error.UnknownInterface",
		"org.freedesktop.DBus.Error.UnknownMethod", "org.freedesktop.Secret.Error.NoSuchObject":
		return true
	}
	return false
}

// newestItem returns the most recently modified of items (the first of
// them when their times cannot be read or are equal).
func newestItem(svc *ss.SecretService, items []dbus.ObjectPath) dbus.ObjectPath {
	if len(items) == 1 {
		return items[0] // the usual case: no call to make
	}
	best, bestTime := items[0], uint64(0)
	for _, item := range items {
		v, err := svc.Object("org.freedesktop.secrets", item).GetProperty("org.freedesktop.Secret.Item.Modified")
		if err != nil {
			return items[0]
		}
		if t, ok := v.Value().(uint64); ok && t > bestTime {
			best, bestTime = item, t
		}
	}
	return best
}

func (s secretService) Set(service, user, password string) error {
	svc, c, err := s.open()
	if err != nil {
		return err
	}
	session, err := svc.OpenSession()
	if err != nil {
		return err
	}
	defer svc.Close(session)
	attrs := itemQuery(service, user)
	attrs["application"] = pythonKeyringApp
	label := fmt.Sprintf("Password for '%s' on '%s'", user, service)
	// CreateItem replaces an item that has all of attrs.
	if err := svc.CreateItem(c, label, attrs, ss.NewSecret(session.Path(), password)); err != nil {
		return err
	}
	// Items without the application attribute (go-keyring's, or this
	// program's before it wrote Python keyring's layout) were not
	// replaced; they go now, so that every reader finds the new value.
	ours, err := svc.SearchItems(c, attrs)
	if err != nil {
		return err
	}
	all, err := svc.SearchItems(c, itemQuery(service, user))
	if err != nil {
		return err
	}
	for _, item := range all {
		if !slices.Contains(ours, item) {
			if err := svc.Delete(item); err != nil && !vanished(err) {
				return err
			}
		}
	}
	return nil
}

func (s secretService) Delete(service, user string) error {
	svc, c, err := s.open()
	if err != nil {
		return err
	}
	items, err := svc.SearchItems(c, itemQuery(service, user))
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return keyring.ErrNotFound
	}
	var errs []error
	for _, item := range items {
		// One another process deleted meanwhile is gone all the same.
		if err := svc.Delete(item); err != nil && !vanished(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
