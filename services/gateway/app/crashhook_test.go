package app

import (
	"os/exec"
	"strings"
	"testing"

	"backinstock/shared/config"
	"backinstock/shared/testenv"
)

// TestProductionBuildHasNoCrashHook builds the gateway as a deployment
// does and as the crash tests do: only the latter has the crash flags and
// the SIGKILL (its symbol), so no setting can make a deployed gateway kill
// itself. The crashhook build is checked too, so the test cannot pass by
// looking for the wrong thing.
func TestProductionBuildHasNoCrashHook(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway twice")
	}
	check := func(tags string, want bool) {
		var tagList []string
		if tags != "" {
			tagList = []string{tags}
		}
		bin := testenv.BuildBinary(t, "backinstock/services/gateway/cmd/gateway", tagList...)
		help, _ := exec.Command(bin, "run", "--help").CombinedOutput()
		if got := strings.Contains(string(help), "GATEWAY_CRASH_AT"); got != want {
			t.Errorf("tags %q: --help lists GATEWAY_CRASH_AT = %v, want %v\n%s", tags, got, want, help)
		}
		syms, err := exec.Command("go", "tool", "nm", bin).CombinedOutput()
		if err != nil {
			t.Fatalf("go tool nm: %v\n%s", err, syms)
		}
		if got := strings.Contains(string(syms), "services/gateway/app.crashKill"); got != want {
			t.Errorf("tags %q: binary has app.crashKill = %v, want %v", tags, got, want)
		}
	}
	check("", false)
	check("crashhook", true)
}

// A build without the crash hook refuses CrashAt set in-process rather than
// silently never crashing (the crash tests would pass vacuously); a build
// with it refuses a step the protocol does not have.
func TestCrashAtIsCheckedForTheBuild(t *testing.T) {
	c := Config{Region: "eu-west-1", RedisURL: "redis://127.0.0.1:1/0", NATSURL: "nats://127.0.0.1:1", CrashAt: "after-mark"}
	c.SMTP.From = "shop@shop.example"
	c.setDefaults()
	err := c.Validate()
	if crashHooks {
		if err != nil {
			t.Fatalf("Validate() = %v with a crash hook build", err)
		}
		c.CrashAt = "before-lunch"
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `GATEWAY_CRASH_AT: "before-lunch" is not one of`) {
			t.Fatalf("Validate() = %v, want GATEWAY_CRASH_AT refused", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "GATEWAY_CRASH_AT: this build has no crash hook") {
		t.Fatalf("Validate() = %v, want an error naming GATEWAY_CRASH_AT", err)
	}
}

// The command line's path: every field holds its flag's value and Validate
// runs without setDefaults. The defaults plus the two required settings
// must pass, in this build whichever it is (a production build binds no
// crash flags).
func TestFlagDefaultsValidate(t *testing.T) {
	var c Config
	s := config.NewSet("gateway run")
	c.Bind(s)
	if err := s.Parse([]string{"--region", "eu-west-1", "--email-from", "shop@shop.example"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the flag defaults do not validate: %v", err)
	}
}
