package app_test

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"backinstock/services/engagement/app"
	"backinstock/shared/config"
)

// bind parses args with env (KEY=value pairs) set, as the command line does.
func bind(t *testing.T, env map[string]string, args ...string) (app.Config, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var c app.Config
	s := config.NewSet("engagement run")
	c.Bind(s)
	if err := s.Parse(args); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func TestDefaultsFromTheCommandLineAreValid(t *testing.T) {
	c, err := bind(t, map[string]string{"API_TOKEN": "t", "CLICK_KEYS": keysA})
	if err != nil {
		t.Fatal(err)
	}
	if c.ClicksTopic != "engagement.clicks.v1" || c.HTTPAddr != "127.0.0.1:8085" || c.RequestTimeout.String() != "2s" ||
		c.OrdersTopic != "orders.v1" || c.StatusTopic != "delivery.status.v1" || c.AttributionGroup != "engagement-attribution" ||
		c.ClickWindow != 24*time.Hour || c.ViewWindow != 240*time.Hour || c.Horizon != 720*time.Hour {
		t.Errorf("defaults %+v", c)
	}
}

// TestBadSettingsAreNamed: each bad setting is refused with its variable's
// name, all of them at once, and a secret is never shown.
func TestBadSettingsAreNamed(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"token", map[string]string{"API_TOKEN": ""}, []string{"API_TOKEN: required"}},
		{"keys missing", map[string]string{"CLICK_KEYS": ""}, []string{"CLICK_KEYS: required"}},
		{"short secret", map[string]string{"CLICK_KEYS": "k1:tooshortsecret"}, []string{"CLICK_KEYS: key 1 (k1): secret must be at least 32 bytes"}},
		{"key id", map[string]string{"CLICK_KEYS": "k.1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}, []string{`CLICK_KEYS: key 1: id "k.1" must match`}},
		{"timeout", map[string]string{"REQUEST_TIMEOUT": "5m"}, []string{"REQUEST_TIMEOUT: must be between 10ms and 1m, got 5m0s"}},
		{"topic", map[string]string{"ENGAGEMENT_CLICKS_TOPIC": " "}, []string{}},
		{"click window", map[string]string{"ATTRIBUTION_CLICK_WINDOW": "0s"}, []string{"ATTRIBUTION_CLICK_WINDOW: must be between 1m and 2160h0m0s, got 0s"}},
		{"view window shorter than the click window", map[string]string{"ATTRIBUTION_CLICK_WINDOW": "48h", "ATTRIBUTION_VIEW_WINDOW": "24h"},
			[]string{"ATTRIBUTION_VIEW_WINDOW: must be at least ATTRIBUTION_CLICK_WINDOW (48h0m0s), got 24h0m0s"}},
		{"view window too long", map[string]string{"ATTRIBUTION_VIEW_WINDOW": "2200h"}, []string{"ATTRIBUTION_VIEW_WINDOW: must be between 1m and 2160h0m0s"}},
		{"horizon", map[string]string{"ATTRIBUTION_HORIZON": "1h"}, []string{"ATTRIBUTION_HORIZON: must be between 24h0m0s and 2160h0m0s, got 1h0m0s"}},
		{"no group", map[string]string{"ATTRIBUTION_GROUP": " "}, []string{}},
		{"several at once", map[string]string{"API_TOKEN": "", "CLICK_KEYS": "", "REDIS_URL": ""}, []string{"API_TOKEN:", "CLICK_KEYS:"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"API_TOKEN": "t", "CLICK_KEYS": keysA}
			for k, v := range c.env {
				env[k] = v
			}
			_, err := bind(t, env)
			if len(c.want) == 0 { // a blank env value keeps the default
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "tooshortsecret") || strings.Contains(err.Error(), "aaaaaaaa") {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
}

// TestReadmeDocumentsEverySetting: the README's configuration table lists
// exactly the variables `engagement run` binds (besides the Kafka ones,
// which the top-level README documents for every service).
func TestReadmeDocumentsEverySetting(t *testing.T) {
	var c app.Config
	s := config.NewSet("engagement run")
	c.Bind(s)
	bound := map[string]bool{}
	re := regexp.MustCompile(`\(env ([A-Z][A-Z0-9_]*)\)`)
	s.FS.VisitAll(func(f *flag.Flag) {
		if m := re.FindStringSubmatch(f.Usage); m != nil && !strings.HasPrefix(m[1], "KAFKA_") {
			bound[m[1]] = true
		}
	})
	bound["LOG_LEVEL"] = true // bound by shared/cli for every command
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| (`[A-Z][A-Z0-9_]*`(?:, `[A-Z][A-Z0-9_]*`)*) \\|").FindAllStringSubmatch(string(readme), -1) {
		for _, k := range strings.Split(m[1], ", ") {
			if k = strings.Trim(k, "`"); !strings.HasPrefix(k, "KAFKA_") {
				documented[k] = true
			}
		}
	}
	for k := range bound {
		if !documented[k] {
			t.Errorf("README lacks %s", k)
		}
	}
	for k := range documented {
		if !bound[k] {
			t.Errorf("README documents %s, which engagement run does not bind", k)
		}
	}
}
