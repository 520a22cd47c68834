package pause

import (
	"net/http"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"backinstock/shared/httpapi"
	"backinstock/topics/events"
)

// Path is the admin route: POST pauses, GET shows; PathResume resumes.
const (
	Path       = "/v1/admin/pause"
	PathResume = "/v1/admin/resume"
)

// Limits of the request's free-text fields.
const (
	MaxOperatorLen = 128
	MaxReasonLen   = 500
)

// Request is the body of POST /v1/admin/pause and /v1/admin/resume.
type Request struct {
	Region string `json:"region"`
	// Channel empty means every channel of the region.
	Channel  string `json:"channel,omitempty"`
	Operator string `json:"operator,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// RouteOptions wire the admin routes of one service.
type RouteOptions struct {
	// Region is the region the service serves: the only one its routes
	// take (another region's replicas may use another Redis).
	Region  string
	Store   *Store
	Watcher *Watcher
	// Disabled makes every route a public 503 saying so (a service
	// without an API_TOKEN has no way to protect them).
	Disabled string
	Log      *zap.Logger
}

// requestTimeout bounds a route's Redis work; past it the answer is a 503.
const requestTimeout = 5 * time.Second

// Routes adds POST /v1/admin/pause, POST /v1/admin/resume and
// GET /v1/admin/pause to rt (bearer token: they are Handle routes).
func Routes(rt *httpapi.Router, o RouteOptions) {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Disabled != "" {
		off := func(http.ResponseWriter, *http.Request) error {
			return httpapi.Errorf(http.StatusServiceUnavailable, "admin_disabled", "%s", o.Disabled)
		}
		rt.Public("POST "+Path, "admin_pause", off)
		rt.Public("POST "+PathResume, "admin_resume", off)
		rt.Public("GET "+Path, "admin_pause_state", off)
		return
	}
	rt.Handle("POST "+Path, "admin_pause", httpapi.Bounded(requestTimeout, func(w http.ResponseWriter, r *http.Request) error {
		return o.change(w, r, true)
	}))
	rt.Handle("POST "+PathResume, "admin_resume", httpapi.Bounded(requestTimeout, func(w http.ResponseWriter, r *http.Request) error {
		return o.change(w, r, false)
	}))
	rt.Handle("GET "+Path, "admin_pause_state", httpapi.Bounded(requestTimeout, func(w http.ResponseWriter, r *http.Request) error {
		if reg := r.URL.Query().Get("region"); reg != "" && reg != o.Region {
			return httpapi.BadRequest("region: this service serves %s, not %q", o.Region, reg)
		}
		st, err := o.Store.Load(r.Context(), o.Region)
		if err != nil {
			return o.unavailable(err)
		}
		httpapi.WriteJSON(w, http.StatusOK, st)
		return nil
	}))
}

func (o RouteOptions) change(w http.ResponseWriter, r *http.Request, pause bool) error {
	var req Request
	if err := httpapi.Decode(w, r, 4<<10, &req); err != nil {
		return err
	}
	channels, err := o.check(req)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if pause {
		err = o.Store.Pause(ctx, o.Region, channels, req.Operator, req.Reason)
	} else {
		err = o.Store.Resume(ctx, o.Region, channels)
	}
	if err != nil {
		return o.unavailable(err)
	}
	// This replica applies it now; the others at their next read.
	if err := o.Watcher.Refresh(ctx); err != nil {
		o.Log.Warn("pause state changed but not re-read; the poll applies it", zap.Error(err))
	}
	st, err := o.Store.Load(ctx, o.Region)
	if err != nil {
		return o.unavailable(err)
	}
	verb := "resume"
	if pause {
		verb = "pause"
	}
	o.Log.Info("operator "+verb, zap.Strings("channels", channels), zap.String("operator", req.Operator), zap.String("reason", req.Reason))
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

// check validates req and answers the channels it names.
func (o RouteOptions) check(req Request) ([]string, error) {
	switch {
	case req.Region == "":
		return nil, httpapi.BadRequest("region: required")
	case !events.ValidRegion(req.Region):
		return nil, httpapi.BadRequest("region: %q is not a region id (%s)", req.Region, events.RegionPattern)
	case req.Region != o.Region:
		return nil, httpapi.BadRequest("region: this service serves %s, not %s", o.Region, req.Region)
	case req.Channel != "" && !events.ValidChannel(req.Channel):
		return nil, httpapi.BadRequest("channel: %q is not one of %v (or leave it out for all of them)", req.Channel, events.ChannelNames())
	case utf8.RuneCountInString(req.Operator) > MaxOperatorLen || !utf8.ValidString(req.Operator):
		return nil, httpapi.BadRequest("operator: at most %d characters", MaxOperatorLen)
	case utf8.RuneCountInString(req.Reason) > MaxReasonLen || !utf8.ValidString(req.Reason):
		return nil, httpapi.BadRequest("reason: at most %d characters", MaxReasonLen)
	}
	if req.Channel == "" {
		return events.ChannelNames(), nil
	}
	return []string{req.Channel}, nil
}

func (o RouteOptions) unavailable(err error) error {
	o.Log.Warn("pause state store", zap.Error(err))
	return httpapi.Errorf(http.StatusServiceUnavailable, "store_unavailable", "the pause state could not be read or written; retry (pausing or resuming twice is harmless)")
}
