package redact

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
)

// NewHandler returns a slog.Handler that passes every record to h with its
// secrets fingerprinted, in groups too:
//   - string attributes named like a secret field or header ("token",
//     "code", "authorization", …) are replaced by their fingerprint;
//   - http.Header, url.Values and *url.URL values are redacted by Header,
//     Query and RequestURL.
//
// Other attributes, the message included, pass unchanged: code that logs
// a secret under an innocent name is not saved by this handler.
func NewHandler(h slog.Handler) slog.Handler {
	return &handler{h: h}
}

type handler struct{ h slog.Handler }

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	changed := false
	r.Attrs(func(a slog.Attr) bool {
		_, changed = redactAttr(a)
		return !changed
	})
	if !changed {
		return h.h.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		a, _ = redactAttr(a)
		out.AddAttrs(a)
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i], _ = redactAttr(a)
	}
	return &handler{h: h.h.WithAttrs(out)}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{h: h.h.WithGroup(name)}
}

// redactAttr returns a redacted, and whether that changed anything.
func redactAttr(a slog.Attr) (slog.Attr, bool) {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		s := v.String()
		switch {
		case s == "" || isFingerprint(s):
			return a, false
		case IsSecretHeader(a.Key):
			return slog.String(a.Key, HeaderValue(a.Key, s)), true
		case IsSecretField(a.Key):
			return slog.String(a.Key, Fingerprint(s)), true
		}
		return a, false
	case slog.KindGroup:
		attrs := v.Group()
		var out []slog.Attr
		for i, g := range attrs {
			r, changed := redactAttr(g)
			if changed && out == nil {
				out = append(make([]slog.Attr, 0, len(attrs)), attrs[:i]...)
			}
			if out != nil {
				out = append(out, r)
			}
		}
		if out == nil {
			return a, false
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}, true
	case slog.KindAny:
		switch x := v.Any().(type) {
		case http.Header:
			return slog.Any(a.Key, Header(x)), true
		case url.Values:
			return slog.String(a.Key, Query(x.Encode())), true
		case *url.URL:
			if x == nil {
				return a, false
			}
			return slog.String(a.Key, RequestURL(x)), true
		}
	}
	return a, false
}
