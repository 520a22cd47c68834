package api

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/services/wishlist/internal/privacy"
	"backinstock/shared/httpapi"
	"backinstock/topics/events"
)

// The personal-data routes: GET /v1/users/{user_id}/export answers
// everything the services keep about the user (GDPR Art. 15), DELETE
// /v1/users/{user_id} erases it everywhere (Art. 17). Both need the edge
// (NATS) as well as Redis and the changelog: without it they answer 503
// edge_not_configured and read or change nothing.

// privacyMetrics count the erasures' work.
type privacyMetrics struct {
	erased *prometheus.CounterVec
}

func newPrivacyMetrics(reg prometheus.Registerer) privacyMetrics {
	m := privacyMetrics{erased: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_wishlist_erased_total",
		Help: "What user erasures removed, by kind (entries, preferences, tombstones, checkpoints, notifier_sent, notifier_held, gateway_delivered, gateway_devices, edge_messages)."}, []string{"kind"})}
	if reg != nil {
		reg.MustRegister(m.erased)
	}
	return m
}

// exportView is the export document: the wishlist's own data as its other
// routes show it, then the other services' (privacy.Data).
type exportView struct {
	UserID      string             `json:"user_id"`
	ExportedAt  time.Time          `json:"exported_at"`
	Wishlist    []entryView        `json:"wishlist"`
	Preferences events.Preferences `json:"preferences"`
	Devices     []events.Device    `json:"devices"`
	privacy.Data
}

func (a *API) edgeReady() error {
	if a.o.Privacy == nil || a.o.Privacy.JS == nil {
		return httpapi.Errorf(http.StatusServiceUnavailable, "edge_not_configured",
			"export and erasure need the edge: set NATS_URL (and its credentials) so the user's notifications there can be read and purged")
	}
	return nil
}

func (a *API) exportUser(w http.ResponseWriter, r *http.Request) error {
	ids, err := pathIDs(r, "user_id")
	if err != nil {
		return err
	}
	if err := a.edgeReady(); err != nil {
		return err
	}
	entries, prefs, err := a.svc.Store.Entries(r.Context(), ids[0])
	if err != nil {
		return err
	}
	others, err := a.o.Privacy.Export(r.Context(), ids[0])
	if err != nil {
		return err
	}
	v := exportView{UserID: ids[0], ExportedAt: time.Now().UTC(), Wishlist: make([]entryView, len(entries)), Devices: []events.Device{}, Data: others}
	for i, e := range entries {
		v.Wishlist[i] = viewOf(e)
	}
	if prefs != nil {
		v.Preferences = events.Preferences(*prefs)
		if len(prefs.Devices) > 0 {
			v.Devices = prefs.Devices
		}
		v.Preferences.Devices = nil
	}
	a.log.Info("user data exported", zap.String("user_hash", userHash(ids[0])),
		zap.Int("entries", len(entries)), zap.Int("edge_messages", len(others.Edge)))
	httpapi.WriteJSON(w, http.StatusOK, v)
	return nil
}

// eraseUser removes the wishlist's data first (changelog tombstones, then
// Redis), then the other services'. Every step deletes what it finds, so a
// repeat after a failure finishes the erasure, and a repeat after success
// finds nothing and writes nothing: 204 either way.
func (a *API) eraseUser(w http.ResponseWriter, r *http.Request) error {
	ids, err := pathIDs(r, "user_id")
	if err != nil {
		return err
	}
	if err := a.edgeReady(); err != nil {
		return err
	}
	own, err := a.svc.Erase(r.Context(), ids[0])
	if err != nil {
		return err
	}
	others, err := a.o.Privacy.Erase(r.Context(), ids[0])
	if err != nil {
		return err
	}
	prefs := 0
	if own.Prefs {
		prefs = 1
	}
	counts := []struct {
		kind string
		n    int
	}{
		{"entries", own.Entries}, {"preferences", prefs}, {"tombstones", own.Tombstones}, {"checkpoints", own.Checkpoints},
		{"notifier_sent", others.NotifierSent}, {"notifier_held", others.NotifierHeld},
		{"gateway_delivered", others.GatewayDelivered}, {"gateway_devices", others.GatewayDevices},
		{"edge_messages", int(others.EdgeMessages)},
	}
	// The audit record: the user's hash and counts, no id or contact.
	fields := []zap.Field{zap.String("user_hash", userHash(ids[0]))}
	for _, c := range counts {
		a.m.privacy.erased.WithLabelValues(c.kind).Add(float64(c.n))
		fields = append(fields, zap.Int(c.kind, c.n))
	}
	a.log.Info("user erased", fields...)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// userHash names a user in the audit log without the id: the first 16 hex
// digits of its SHA-256, enough to match a request to its log line.
func userHash(userID string) string {
	h := sha256.Sum256([]byte(userID))
	return hex.EncodeToString(h[:8])
}
