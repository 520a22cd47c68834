// Package edgeguard holds the limits of the edge's browser users that JWT
// claims cannot express, through a connection to the NATS system account:
// the per-user connection limit (Guard) and the revocation of a user's
// tokens (Revoker).
//
// Why the limit closes connections instead of refusing them at connect: a
// JWT has no per-user connection count, so refusing at connect takes an
// auth callout, and a callout puts this service on the path of every
// browser connect (the edge refuses everyone while no notifier answers; and
// JWT checks, revocations and connection types would have to be redone in
// our code). The guard leaves authentication to nats-server and only
// watches: it counts each user's connections from the system account's
// connect and disconnect events and closes ("kicks") the connections beyond
// the limit, newest first, a few milliseconds after they connect. When the
// guard is down the edge keeps serving, without the limit; when it starts
// again it rebuilds the counts from the servers' connection lists and closes
// the excess then.
package edgeguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/services/notifier/edgeauth"
	"backinstock/services/notifier/internal/connlimit"
	"backinstock/shared/config"
)

// System account subjects (nats-server's events.go).
const (
	connectEvents    = "$SYS.ACCOUNT.%s.CONNECT"
	disconnectEvents = "$SYS.ACCOUNT.%s.DISCONNECT"
	shutdownEvents   = "$SYS.SERVER.*.SHUTDOWN"
	connzPing        = "$SYS.REQ.SERVER.PING.CONNZ"
	connzServer      = "$SYS.REQ.SERVER.%s.CONNZ"
	kickServer       = "$SYS.REQ.SERVER.%s.KICK"
)

// Options of a Guard.
type Options struct {
	// Account is the public key of the app account the browser users
	// belong to (edgeauth.Issuer.Account).
	Account string
	// MaxConnsPerUser is the most connections one user_id keeps open.
	MaxConnsPerUser int
	// ListWait is how long a connection list waits for the servers of the
	// cluster to answer (their number is not known beforehand).
	ListWait time.Duration
	// ResyncInterval is how often the counts are rebuilt from the servers'
	// lists, which catches what events cannot tell (a server that died
	// without a shutdown event).
	ResyncInterval time.Duration
	// RekickAfter is how long a connection asked to close may stay before
	// it is asked again.
	RekickAfter time.Duration
	Metrics     *Metrics
	Log         *zap.Logger
	Now         func() time.Time
}

func (o *Options) setDefaults() {
	config.Default(&o.ListWait, time.Second)
	config.Default(&o.ResyncInterval, time.Minute)
	config.Default(&o.RekickAfter, 5*time.Second)
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
}

// Validate names what is wrong.
func (o Options) Validate() error {
	var p config.Problems
	if o.Account == "" {
		p.Addf("Account", "required")
	}
	config.Positive(&p, "EDGE_MAX_CONNS_PER_USER", o.MaxConnsPerUser)
	config.Positive(&p, "ListWait", o.ListWait)
	config.Positive(&p, "ResyncInterval", o.ResyncInterval)
	config.Positive(&p, "RekickAfter", o.RekickAfter)
	return p.Err()
}

// Metrics of the guard and the revoker.
type Metrics struct {
	Kicked      prometheus.Counter
	Users       prometheus.Gauge
	Conns       prometheus.Gauge
	Revocations prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Kicked: prometheus.NewCounter(prometheus.CounterOpts{Name: "backinstock_notifier_edge_kicked_total",
			Help: "Browser connections closed for exceeding the per-user connection limit (kicks sent; a resent kick counts again)."}),
		Users: prometheus.NewGauge(prometheus.GaugeOpts{Name: "backinstock_notifier_edge_users",
			Help: "Users with at least one open browser connection, as the guard counts them."}),
		Conns: prometheus.NewGauge(prometheus.GaugeOpts{Name: "backinstock_notifier_edge_user_connections",
			Help: "Open browser connections, as the guard counts them."}),
		Revocations: prometheus.NewCounter(prometheus.CounterOpts{Name: "backinstock_notifier_edge_revocations_total",
			Help: "Users whose edge tokens were revoked through this notifier."}),
	}
	if reg != nil {
		reg.MustRegister(m.Kicked, m.Users, m.Conns, m.Revocations)
	}
	return m
}

// Guard enforces the per-user connection limit. It owns its tracker: one
// goroutine (Run) reads the events and decides.
type Guard struct {
	nc *nats.Conn
	o  Options
	tr *connlimit.Tracker
}

// New returns a guard on nc, a connection of a system-account user.
func New(nc *nats.Conn, o Options) (*Guard, error) {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("edge guard: %w", err)
	}
	return &Guard{nc: nc, o: o, tr: connlimit.New(o.MaxConnsPerUser)}, nil
}

// eventBuffer holds the events that arrive while a connection list is
// gathered (a second of connects at most, on a busy edge). A full buffer
// drops events (nats.go counts them), which the next tick answers with a
// rebuild.
const eventBuffer = 1 << 16

// Run watches until ctx ends. A failure (the system account unreachable)
// is logged and the watch starts over after a pause: the limit is a guard,
// not a gate, so nothing else stops with it.
func (g *Guard) Run(ctx context.Context) error {
	backoff := time.Second
	for {
		err := g.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		g.o.Log.Warn("edge guard: watch failed; the per-user limit is not enforced until it restarts", zap.Error(err), zap.Duration("retry_in", backoff))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (g *Guard) watch(ctx context.Context) error {
	events := make(chan *nats.Msg, eventBuffer)
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	for _, subj := range []string{fmt.Sprintf(connectEvents, g.o.Account), fmt.Sprintf(disconnectEvents, g.o.Account), shutdownEvents} {
		s, err := g.nc.ChanSubscribe(subj, events)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", subj, err)
		}
		subs = append(subs, s)
	}
	gone := make(chan connlimit.ID, 1024)
	kickReplies := g.nc.NewInbox()
	s, err := g.nc.Subscribe(kickReplies+".>", func(m *nats.Msg) { g.kickReply(m, kickReplies, gone) })
	if err != nil {
		return fmt.Errorf("subscribe kick replies: %w", err)
	}
	subs = append(subs, s)
	if err := g.nc.FlushTimeout(requestTimeout); err != nil {
		return fmt.Errorf("flush subscriptions: %w", err)
	}

	// The counts are rebuilt with the events already flowing into the
	// buffer, so none falls between the list and the events.
	if err := g.resync(ctx, events, kickReplies); err != nil {
		return err
	}
	g.o.Log.Info("edge guard watching", zap.Int("max_conns_per_user", g.o.MaxConnsPerUser),
		zap.Int("users", g.tr.Users()), zap.Int("connections", g.tr.Conns()))

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	reconnects := g.nc.Stats().Reconnects
	dropped := 0
	nextResync := g.o.Now().Add(g.o.ResyncInterval)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-events:
			g.handle(m, true, kickReplies)
		case id := <-gone:
			g.tr.Gone(id)
		case <-tick.C:
			now := g.o.Now()
			g.kick(g.tr.Rekick(now, g.o.RekickAfter), kickReplies)
			// Events lost (a reconnect, a full buffer) or a periodic check:
			// rebuild from the lists.
			d := 0
			for _, s := range subs {
				if n, err := s.Dropped(); err == nil {
					d += n
				}
			}
			if r := g.nc.Stats().Reconnects; r != reconnects || d != dropped || !now.Before(nextResync) {
				reconnects, dropped = r, d
				if err := g.resync(ctx, events, kickReplies); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					g.o.Log.Warn("edge guard: rebuilding the counts failed; retrying", zap.Error(err))
					nextResync = now.Add(5 * time.Second)
					continue
				}
				nextResync = g.o.Now().Add(g.o.ResyncInterval)
			}
			g.gauges()
		}
	}
}

// resync replaces the counts with the servers' lists, replays the events
// that arrived meanwhile without deciding, then closes every excess at once.
func (g *Guard) resync(ctx context.Context, events chan *nats.Msg, kickReplies string) error {
	conns, err := g.list(ctx)
	if err != nil {
		return err
	}
	g.tr.Reset(conns)
	for n := len(events); n > 0; n-- {
		g.handle(<-events, false, kickReplies)
	}
	g.kick(g.tr.Excess(g.o.Now()), kickReplies)
	g.gauges()
	return nil
}

func (g *Guard) gauges() {
	g.o.Metrics.Users.Set(float64(g.tr.Users()))
	g.o.Metrics.Conns.Set(float64(g.tr.Conns()))
}

// event is the part of nats-server's ConnectEventMsg and DisconnectEventMsg
// the guard reads (the server's own types would link nats-server into the
// notifier binary).
type event struct {
	Server struct {
		ID string `json:"id"`
	} `json:"server"`
	Client struct {
		ID    uint64      `json:"id"`
		User  string      `json:"user"`
		Start time.Time   `json:"start"`
		JWT   string      `json:"jwt"`
		Tags  jwt.TagList `json:"tags"`
	} `json:"client"`
}

func (g *Guard) handle(m *nats.Msg, decide bool, kickReplies string) {
	if strings.HasSuffix(m.Subject, ".SHUTDOWN") {
		// $SYS.SERVER.<id>.SHUTDOWN
		if toks := strings.Split(m.Subject, "."); len(toks) == 4 {
			g.tr.ServerGone(toks[2])
		}
		return
	}
	var ev event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		g.o.Log.Warn("edge guard: undecodable event", zap.String("subject", m.Subject), zap.Error(err))
		return
	}
	if !ev.Client.Tags.Contains(edgeauth.EdgeUserTag) || ev.Client.User == "" {
		return // a service's connection: not limited
	}
	c := connlimit.Conn{Server: ev.Server.ID, CID: ev.Client.ID, User: ev.Client.User, Start: ev.Client.Start}
	if strings.HasSuffix(m.Subject, ".DISCONNECT") {
		g.tr.Disconnect(c.User, c.ID())
		return
	}
	c.UserID = userID(ev.Client.JWT)
	if !decide {
		g.tr.Apply(c)
		return
	}
	g.kick(g.tr.Connect(c, g.o.Now()), kickReplies)
}

// userID reads the user id from a browser token for the logs; the server
// has verified the token, the name is all that is needed of it.
func userID(token string) string {
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return ""
	}
	id, _ := edgeauth.UserIDFromName(uc.Name)
	return id
}

// kick asks each connection's server to close it. The reply, on
// <kickReplies>.<server>.<cid>, says whether the server had it.
func (g *Guard) kick(conns []connlimit.Conn, kickReplies string) {
	for _, c := range conns {
		req, _ := json.Marshal(struct {
			CID uint64 `json:"cid"`
		}{c.CID})
		reply := fmt.Sprintf("%s.%s.%d", kickReplies, c.Server, c.CID)
		if err := g.nc.PublishRequest(fmt.Sprintf(kickServer, c.Server), reply, req); err != nil {
			// Asked again after RekickAfter.
			g.o.Log.Warn("edge guard: kick not sent", zap.String("user_key", c.User), zap.Uint64("cid", c.CID), zap.Error(err))
			continue
		}
		g.o.Metrics.Kicked.Inc()
		g.o.Log.Info("edge guard: connection over the per-user limit closed",
			zap.String("user_id", c.UserID), zap.String("user_key", c.User), zap.String("server", c.Server),
			zap.Uint64("cid", c.CID), zap.Int("limit", g.o.MaxConnsPerUser))
	}
}

// apiReply is the envelope of nats-server's system requests
// (ServerAPIResponse).
type apiReply struct {
	Server struct {
		ID string `json:"id"`
	} `json:"server"`
	Data  json.RawMessage `json:"data"`
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

// kickReply forgets a connection its server no longer holds (its
// disconnect event was lost or came first), so it is not kicked forever.
func (g *Guard) kickReply(m *nats.Msg, prefix string, gone chan<- connlimit.ID) {
	var r apiReply
	if err := json.Unmarshal(m.Data, &r); err != nil || r.Error == nil {
		return
	}
	server, cid, ok := strings.Cut(strings.TrimPrefix(m.Subject, prefix+"."), ".")
	n, err := strconv.ParseUint(cid, 10, 64)
	if !ok || err != nil {
		return
	}
	g.o.Log.Debug("edge guard: kick answered", zap.String("server", server), zap.Uint64("cid", n), zap.String("error", r.Error.Description))
	select {
	case gone <- connlimit.ID{Server: server, CID: n}:
	default: // full: the next rekick asks again and gets here again
	}
}

// connz is the part of nats-server's Connz the guard reads.
type connz struct {
	Total       int `json:"total"`
	Offset      int `json:"offset"`
	Connections []struct {
		CID   uint64      `json:"cid"`
		Start time.Time   `json:"start"`
		User  string      `json:"authorized_user"`
		Tags  jwt.TagList `json:"tags"`
	} `json:"connections"`
}

// requestTimeout bounds one request to a server.
const requestTimeout = 5 * time.Second

// listPage is how many connections one server answer holds: larger
// answers would exceed the default max_payload (1 MB) between servers.
const listPage = 1024

// list gathers the open browser connections of the account from every
// server that answers within ListWait, page by page.
func (g *Guard) list(ctx context.Context) ([]connlimit.Conn, error) {
	inbox := g.nc.NewInbox()
	sub, err := g.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("connection list: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := g.nc.PublishRequest(connzPing, inbox, g.connzRequest(0)); err != nil {
		return nil, fmt.Errorf("connection list: %w", err)
	}
	deadline := time.Now().Add(g.o.ListWait)
	var out []connlimit.Conn
	servers := 0
	for {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		m, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			break // the wait is over
		}
		server, page, err := decodeConnz(m.Data)
		if err != nil {
			return nil, err
		}
		servers++
		out = append(out, g.conns(server, page)...)
		for seen := page.Offset + len(page.Connections); seen < page.Total && len(page.Connections) > 0; seen = page.Offset + len(page.Connections) {
			rctx, cancel := context.WithTimeout(ctx, requestTimeout)
			r, err := g.nc.RequestWithContext(rctx, fmt.Sprintf(connzServer, server), g.connzRequest(seen))
			cancel()
			if err != nil {
				return nil, fmt.Errorf("connection list of %s at %d: %w", server, seen, err)
			}
			if _, page, err = decodeConnz(r.Data); err != nil {
				return nil, err
			}
			out = append(out, g.conns(server, page)...)
		}
	}
	if servers == 0 {
		return nil, errors.New("connection list: no server answered")
	}
	return out, nil
}

func (g *Guard) connzRequest(offset int) []byte {
	b, _ := json.Marshal(map[string]any{"acc": g.o.Account, "auth": true, "offset": offset, "limit": listPage})
	return b
}

func decodeConnz(data []byte) (string, connz, error) {
	var r apiReply
	var page connz
	if err := json.Unmarshal(data, &r); err != nil {
		return "", page, fmt.Errorf("connection list: %w", err)
	}
	if r.Error != nil {
		return "", page, fmt.Errorf("connection list of %s: %s", r.Server.ID, r.Error.Description)
	}
	if err := json.Unmarshal(r.Data, &page); err != nil {
		return "", page, fmt.Errorf("connection list of %s: %w", r.Server.ID, err)
	}
	return r.Server.ID, page, nil
}

func (g *Guard) conns(server string, page connz) []connlimit.Conn {
	var out []connlimit.Conn
	for _, c := range page.Connections {
		if c.Tags.Contains(edgeauth.EdgeUserTag) && c.User != "" {
			out = append(out, connlimit.Conn{Server: server, CID: c.CID, User: c.User, Start: c.Start})
		}
	}
	return out
}
