package fanout

import (
	"strings"
	"testing"
)

func TestConfigZeroMeansDefaultNegativeIsRefused(t *testing.T) {
	var c Config
	c.setDefaults()
	if d := Defaults(); c.PageSize != d.PageSize || c.InFlightPages != d.InFlightPages || c.Validate() != nil {
		t.Fatalf("defaults %+v: %v", c, c.Validate())
	}
	tests := []struct {
		c    Config
		want string
	}{
		{Config{PageSize: -1}, "PageSize"},
		{Config{InFlightPages: -1}, "InFlightPages"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if _, err := New(tt.c, nil, nil, nil, nil, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New(%+v) = %v, want an error naming %s", tt.c, err, tt.want)
			}
		})
	}
}
