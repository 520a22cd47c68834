package stack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/deploy/devstack/internal/demo"
	engagement "backinstock/services/engagement/app"
	gateway "backinstock/services/gateway/app"
	inventory "backinstock/services/inventory/app"
	notifier "backinstock/services/notifier/app"
	wishlist "backinstock/services/wishlist/app"
	"backinstock/shared/httpapi"
	"backinstock/shared/kafka"
	"backinstock/topics/events"
)

// Run starts the infrastructure and, unless InfraOnly, every service, seeds
// the demo data, writes devstack.env once everything answers, and stops it
// all when ctx ends (services first, then the infrastructure).
func Run(ctx context.Context, cfg Config, log *zap.Logger, out io.Writer) error {
	in, err := StartInfra(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer in.Close()
	if cfg.InfraOnly {
		if err := WriteEnv(cfg.DataDir, in.Env, out); err != nil {
			return err
		}
		fmt.Fprintln(out, "# infrastructure only (--infra-only): Kafka, NATS and Redis are up. Ctrl-C stops them.")
		<-ctx.Done()
		return nil
	}
	svcs, err := services(cfg, in.Env)
	if err != nil {
		return err
	}
	svcCtx, stopSvcs := context.WithCancel(ctx)
	defer stopSvcs()
	done := make(chan error, 1)
	go func() { done <- runServices(svcCtx, log, svcs) }()

	if err := waitReady(ctx, svcs, 90*time.Second); err != nil {
		stopSvcs()
		return joinStop(err, <-done)
	}
	env, demoSrv, err := startDemo(ctx, cfg, in.Env, svcs, log)
	if err != nil {
		stopSvcs()
		return joinStop(err, <-done)
	}
	if err := WriteEnv(cfg.DataDir, env, out); err != nil {
		stopSvcs()
		return joinStop(err, <-done)
	}
	fmt.Fprintf(out, "# everything is up. Open %s in a browser. Ctrl-C stops the stack.\n", demoURL(env))
	demoErr := make(chan error, 1)
	go func() { demoErr <- demoSrv.Run(svcCtx) }()
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-done:
		done = nil
	case runErr = <-demoErr:
		demoErr = nil
	}
	log.Info("stopping the stack")
	stopSvcs()
	if demoErr != nil {
		runErr = joinStop(runErr, <-demoErr)
	}
	if done != nil {
		runErr = joinStop(runErr, <-done)
	}
	return runErr
}

func joinStop(a, b error) error {
	if a == nil {
		return b
	}
	if b != nil {
		return fmt.Errorf("%w (and while stopping: %v)", a, b)
	}
	return a
}

func demoURL(e Env) string {
	for _, kv := range e.Extra {
		if kv[0] == "DEMO_URL" {
			return kv[1]
		}
	}
	return ""
}

// services configures inventory, the wishlist API, the engagement service,
// and per region a fan-out group, a notifier and a gateway, each on its own
// port from HTTPPortBase.
func services(cfg Config, e Env) ([]*service, error) {
	kc := kafka.Config{Brokers: strings.Split(e.KafkaBrokers, ",")}
	addr := func(offset int) string { return fmt.Sprintf("127.0.0.1:%d", cfg.HTTPPortBase+offset) }
	var svcs []*service

	var inv inventory.Config
	if err := bind("inventory", inv.Bind); err != nil {
		return nil, err
	}
	inv.Kafka, inv.RedisURL, inv.APIToken, inv.Regions, inv.HTTPAddr = kc, e.RedisURL, e.APIToken, cfg.Regions, addr(1)
	svcs = append(svcs, &service{name: "inventory", run: func(ctx context.Context, log *zap.Logger, reg *prometheus.Registry, on func(string)) error {
		c := inv
		c.OnListen = on
		return inventory.Run(ctx, c, log, reg)
	}})

	var wl wishlist.Config
	if err := bind("wishlist", wl.Bind, wl.BindServe, wl.BindFanout); err != nil {
		return nil, err
	}
	wl.Kafka, wl.RedisURL, wl.APIToken, wl.Regions, wl.HTTPAddr = kc, e.RedisURL, e.APIToken, cfg.Regions, addr(2)
	wl.UnsubscribeKeys = e.UnsubscribeKeys
	// The export and erasure read and purge the edge: the service user's
	// creds (a data dir from before wishlist.creds existed has only these).
	wl.NATSURL, wl.NATSCreds = e.NATSURL, e.NATSCreds
	svcs = append(svcs, &service{name: "wishlist", run: func(ctx context.Context, log *zap.Logger, reg *prometheus.Registry, on func(string)) error {
		c := wl
		c.OnListen = on
		return wishlist.RunServe(ctx, c, log, reg)
	}})
	for i, region := range cfg.Regions {
		svcs = append(svcs, &service{name: "fanout." + region, run: func(ctx context.Context, log *zap.Logger, reg *prometheus.Registry, on func(string)) error {
			c := wl
			c.Region, c.MetricsAddr, c.OnListen = region, addr(10+i), on
			// The demo shows a restock at once: waves of a stock-aware restock come quickly.
			c.BatchInterval = 5 * time.Second
			return wishlist.RunFanout(ctx, c, log, reg)
		}})
	}

	var nt notifier.Config
	if err := bind("notifier", nt.Bind); err != nil {
		return nil, err
	}
	nt.Kafka, nt.RedisURL, nt.NATSURL, nt.NATSCreds, nt.APIToken = kc, e.RedisURL, e.NATSURL, e.NATSCreds, e.APIToken
	nt.EdgeAccountSeedFile, nt.EdgeWSURL = e.EdgeAccountSeedFile, e.NATSWSURL
	nt.EdgeSystemCreds, nt.EdgeOperatorSeedFile = e.EdgeSystemCreds, e.EdgeOperatorSeedFile
	for i, region := range cfg.Regions {
		svcs = append(svcs, &service{name: "notifier." + region, run: func(ctx context.Context, log *zap.Logger, reg *prometheus.Registry, on func(string)) error {
			c := nt
			c.Region, c.HTTPAddr, c.OnListen = region, addr(20+i), on
			return notifier.Run(ctx, c, log, reg)
		}})
	}

	// One engagement service for every region: the tracked links.
	var eg engagement.Config
	if err := bind("engagement", eg.Bind); err != nil {
		return nil, err
	}
	eg.Kafka, eg.RedisURL, eg.APIToken, eg.ClickKeys, eg.HTTPAddr = kc, e.RedisURL, e.APIToken, e.ClickKeys, addr(3)
	svcs = append(svcs, &service{name: "engagement", run: func(ctx context.Context, log *zap.Logger, reg *prometheus.Registry, on func(string)) error {
		c := eg
		c.OnListen = on
		return engagement.Run(ctx, c, log, reg)
	}})

	// One gateway per region, email only, to the local Mailpit; its
	// unsubscribe links point at the wishlist API above, its product links
	// at the engagement service.
	var gw gateway.Config
	if err := bind("gateway", gw.Bind); err != nil {
		return nil, err
	}
	smtpHost, smtpPort, err := net.SplitHostPort(e.MailpitSMTP)
	if err != nil {
		return nil, fmt.Errorf("mailpit smtp address %q: %w", e.MailpitSMTP, err)
	}
	gw.Kafka, gw.RedisURL, gw.NATSURL, gw.NATSCreds, gw.APIToken = kc, e.RedisURL, e.NATSURL, e.NATSCreds, e.APIToken
	// The bound defaults deliver email over SMTP; Mailpit speaks it in
	// plain text on 127.0.0.1 (SMTP_TLS=none).
	gw.SMTP.Host, gw.SMTP.TLS, gw.SMTP.From = smtpHost, "none", "Demo shop <shop@demo.test>"
	if gw.SMTP.Port, err = strconv.Atoi(smtpPort); err != nil {
		return nil, fmt.Errorf("mailpit smtp port %q: %w", smtpPort, err)
	}
	gw.UnsubscribeKeys, gw.UnsubscribeBaseURL = e.UnsubscribeKeys, "http://"+addr(2)
	gw.ClickKeys, gw.EngagementBaseURL = e.ClickKeys, "http://"+addr(3)
	for i, region := range cfg.Regions {
		svcs = append(svcs, &service{name: "gateway." + region, run: func(ctx context.Context, log *zap.Logger, reg *prometheus.Registry, on func(string)) error {
			c := gw
			c.Region, c.HTTPAddr, c.OnListen = region, addr(30+i), on
			return gateway.Run(ctx, c, log, reg)
		}})
	}
	return svcs, nil
}

// startDemo seeds the demo wishlists (once per data dir) and prepares the
// page's server; it returns the env with every service's URL.
func startDemo(ctx context.Context, cfg Config, e Env, svcs []*service, log *zap.Logger) (Env, *httpapi.Server, error) {
	byName := map[string]*service{}
	var metrics []string
	for _, s := range svcs {
		byName[s.name] = s
		metrics = append(metrics, s.URL()+"/metrics")
	}
	data := demo.DefaultData(cfg.Regions, events.ChannelNames())
	marker := filepath.Join(cfg.DataDir, "demo-seeded")
	if _, err := os.Stat(marker); err != nil {
		n, err := demo.Seed(ctx, &http.Client{Timeout: 2 * time.Minute}, byName["wishlist"].URL(), e.APIToken, data)
		if err != nil {
			return e, nil, err
		}
		if err := os.WriteFile(marker, []byte(fmt.Sprintf("%d entries\n", n)), 0o644); err != nil {
			return e, nil, err
		}
		log.Info("demo wishlists loaded", zap.Int("entries", n), zap.Int("users", data.Users))
	}
	// The email users' addresses, once per data dir (its own marker: a data
	// dir seeded before the gateways joined the stack gets them too).
	contacts := filepath.Join(cfg.DataDir, "demo-contacts-seeded")
	if _, err := os.Stat(contacts); err != nil {
		n, err := demo.SeedContacts(ctx, &http.Client{Timeout: 30 * time.Second}, byName["wishlist"].URL(), e.APIToken, data)
		if err != nil {
			return e, nil, err
		}
		if err := os.WriteFile(contacts, []byte(fmt.Sprintf("%d users\n", n)), 0o644); err != nil {
			return e, nil, err
		}
		log.Info("demo email addresses set", zap.Int("users", n))
	}
	tokens := map[string]string{}
	for _, region := range cfg.Regions {
		tokens[region] = byName["notifier."+region].URL() + "/v1/edge/token"
	}
	page := demo.New(demo.Config{
		InventoryURL: byName["inventory"].URL(), WishlistURL: byName["wishlist"].URL(), TokenURLs: tokens,
		NATSWSURL: e.NATSWSURL, APIToken: e.APIToken, Regions: cfg.Regions, Channels: events.ChannelNames(),
		MetricsURLs: metrics, Data: data, MailpitURL: e.MailpitURL,
	}, log.Named("demo"))
	srv := httpapi.NewServer(fmt.Sprintf("127.0.0.1:%d", cfg.HTTPPortBase), log.Named("demo"), nil, page)
	if err := srv.Listen(); err != nil {
		return e, nil, err
	}
	e.Extra = append(e.Extra,
		[2]string{"DEMO_URL", "http://" + srv.Addr()},
		[2]string{"INVENTORY_URL", byName["inventory"].URL()},
		[2]string{"WISHLIST_URL", byName["wishlist"].URL()},
		[2]string{"ENGAGEMENT_URL", byName["engagement"].URL()},
	)
	for _, region := range cfg.Regions {
		key := "NOTIFIER_URL_" + strings.ToUpper(strings.ReplaceAll(region, "-", "_"))
		e.Extra = append(e.Extra, [2]string{key, byName["notifier."+region].URL()})
		e.Extra = append(e.Extra, [2]string{strings.Replace(key, "NOTIFIER", "GATEWAY", 1), byName["gateway."+region].URL()})
	}
	return e, srv, nil
}
