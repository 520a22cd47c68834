package pause

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/shared/config"
	"backinstock/topics/events"
)

// DefaultPollInterval is how often a Watcher reads the state: a quarter of
// the one-second bound on applying a change, so a slow read or two still
// fits inside it.
const DefaultPollInterval = 250 * time.Millisecond

// Gate is one channel's pause as this replica sees it. The channels it
// hands out are for select: Paused is closed while the channel is paused,
// Resumed while it is not; each is replaced at the next change, so ask
// again after one fires. A nil *Gate is never paused.
type Gate struct {
	mu      sync.Mutex
	paused  bool
	pausedC chan struct{}
	resumed chan struct{}
}

func newGate() *Gate {
	g := &Gate{pausedC: make(chan struct{}), resumed: make(chan struct{})}
	close(g.resumed)
	return g
}

// IsPaused reports whether the channel is paused now.
func (g *Gate) IsPaused() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused
}

// Paused is closed while the channel is paused (never, for a nil Gate).
func (g *Gate) Paused() <-chan struct{} {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pausedC
}

// Resumed is closed while the channel is not paused.
func (g *Gate) Resumed() <-chan struct{} {
	if g == nil {
		return closed
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.resumed
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// set reports whether the gate changed.
func (g *Gate) set(paused bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused == paused {
		return false
	}
	g.paused = paused
	if paused {
		close(g.pausedC)
		g.resumed = make(chan struct{})
	} else {
		close(g.resumed)
		g.pausedC = make(chan struct{})
	}
	return true
}

// Metrics are a service's pause metrics.
type Metrics struct {
	Paused     *prometheus.GaugeVec
	ReadErrors prometheus.Counter
}

// NewMetrics registers <prefix>paused{channel} (1 while the operator has
// the channel paused) and <prefix>pause_read_errors_total on reg (nil:
// unregistered), with region as a constant label as the services' other
// metrics have. prefix is the service's, "backinstock_notifier_" (a
// literal, so deploy/check finds the names the dashboard queries).
func NewMetrics(reg prometheus.Registerer, prefix, region string) *Metrics {
	cl := prometheus.Labels{"region": region}
	m := &Metrics{
		Paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: prefix + "paused", ConstLabels: cl,
			Help: "1 while an operator has the channel paused (POST /v1/admin/pause), as this replica applies it."}, []string{"channel"}),
		ReadErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + "pause_read_errors_total", ConstLabels: cl,
			Help: "Reads of the pause state that failed (the last state read stays applied)."}),
	}
	if reg != nil {
		reg.MustRegister(m.Paused, m.ReadErrors)
	}
	return m
}

// WatcherOptions configure a Watcher.
type WatcherOptions struct {
	Region string
	// Channels get a Paused gauge series each (the channels the
	// deployment serves); default all.
	Channels []string
	// PollInterval defaults to DefaultPollInterval.
	PollInterval time.Duration
	Metrics      *Metrics
	Log          *zap.Logger
}

// Watcher keeps one replica's view of its region's pause state.
type Watcher struct {
	store *Store
	o     WatcherOptions

	mu      sync.Mutex
	gates   map[string]*Gate
	failing bool
}

// NewWatcher is a watcher of o.Region's state, every gate open until the
// first read (Refresh before starting the work that asks).
func NewWatcher(s *Store, o WatcherOptions) *Watcher {
	config.Default(&o.PollInterval, DefaultPollInterval)
	if len(o.Channels) == 0 {
		o.Channels = events.ChannelNames()
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil, "unregistered_", o.Region)
	}
	w := &Watcher{store: s, o: o, gates: map[string]*Gate{}}
	for _, ch := range events.ChannelNames() {
		w.gates[ch] = newGate()
	}
	for _, ch := range o.Channels {
		o.Metrics.Paused.WithLabelValues(ch).Set(0)
	}
	return w
}

// Gate is channel's gate; nil (never paused) for a name that is not a
// channel.
func (w *Watcher) Gate(channel string) *Gate { return w.gates[channel] }

// Refresh reads the state now and applies it.
func (w *Watcher) Refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(4*w.o.PollInterval, time.Second))
	defer cancel()
	st, err := w.store.Load(ctx, w.o.Region)
	if err != nil {
		return err
	}
	w.apply(st)
	return nil
}

// Run reads the state every PollInterval until ctx ends. A failed read
// keeps the last state (a Redis outage neither pauses nor resumes
// anything); it is logged once per outage and counted.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.o.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := w.Refresh(ctx)
		w.mu.Lock()
		was := w.failing
		w.failing = err != nil
		w.mu.Unlock()
		switch {
		case err != nil && ctx.Err() == nil:
			w.o.Metrics.ReadErrors.Inc()
			if !was {
				w.o.Log.Warn("pause state unreadable; keeping the last one", zap.Error(err))
			}
		case err == nil && was:
			w.o.Log.Info("pause state readable again")
		}
	}
}

func (w *Watcher) apply(st State) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at := map[string]int{} // paused channel -> its entry in st.Paused
	for j, e := range st.Paused {
		at[e.Channel] = j
	}
	// The gauges before the gates: a gate's channels fire as it changes,
	// and whoever wakes on them reads a gauge already in step.
	for _, ch := range w.o.Channels {
		v := 0.0
		if _, ok := at[ch]; ok && w.gates[ch] != nil {
			v = 1
		}
		w.o.Metrics.Paused.WithLabelValues(ch).Set(v)
	}
	for ch, g := range w.gates {
		j, paused := at[ch]
		if !g.set(paused) {
			continue
		}
		if paused {
			e := st.Paused[j]
			w.o.Log.Info("channel paused by an operator", zap.String("channel", ch), zap.Time("since", e.Since),
				zap.String("operator", e.Operator), zap.String("reason", e.Reason))
		} else {
			w.o.Log.Info("channel resumed by an operator", zap.String("channel", ch))
		}
	}
}
