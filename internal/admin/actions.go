package admin

import (
	"errors"
	"net/http"
	"strings"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
)

// maxForm bounds a form body; a callback URL is far shorter.
const maxForm = 64 << 10

// logout logs out every server of the identity in the form field identity.
func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	identity := r.PostFormValue("identity")
	found := false
	var errs []error
	for _, s := range h.o.Servers {
		if s.Auth == nil || identity == "" || s.Auth.Identity() != identity {
			continue
		}
		found = true
		// Servers of one identity may keep tokens in different stores:
		// log each out (forgetting twice is harmless).
		if err := s.Auth.Logout(); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case !found:
		h.render(w, http.StatusBadRequest, "", "No server uses that identity: nothing was logged out.")
	case len(errs) > 0:
		err := errors.Join(errs...)
		h.log.Warn("admin: log out failed", "err", err)
		h.render(w, http.StatusInternalServerError, "", "Log out failed: "+err.Error())
	default:
		h.log.Info("logged out from the status page", "identity", redact.URL(identity))
		http.Redirect(w, r, "/?done=logout", http.StatusSeeOther)
	}
}

// paste completes a login from the pasted callback URL in the form field
// callback. The pasted text is never logged or shown again: it may hold a
// code.
func (h *handler) paste(w http.ResponseWriter, r *http.Request) {
	if h.o.Callbacks == nil {
		h.render(w, http.StatusNotFound, "", "This page cannot complete logins.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		h.render(w, http.StatusBadRequest, "", "The form could not be read: "+err.Error())
		return
	}
	if err := h.o.Callbacks.Deliver(r.PostForm.Get("callback")); err != nil {
		h.render(w, http.StatusBadRequest, "", "The pasted callback was not accepted: "+
			strings.TrimPrefix(err.Error(), "oauth: "))
		return
	}
	http.Redirect(w, r, "/?done=callback", http.StatusSeeOther)
}
