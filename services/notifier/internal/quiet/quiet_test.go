package quiet

import (
	"testing"
	"time"
)

func TestReleaseAt(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		now        time.Time
		loc        *time.Location
		start, end string
		held       bool
		release    time.Time
	}{
		{"outside a daytime window", time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC), berlin, "12:00", "14:00", false, time.Time{}},
		{"inside a daytime window", time.Date(2026, 3, 1, 11, 30, 0, 0, time.UTC), berlin, "12:00", "14:00", true, time.Date(2026, 3, 1, 14, 0, 0, 0, berlin)},
		{"start is inside", time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC), berlin, "12:00", "14:00", true, time.Date(2026, 3, 1, 14, 0, 0, 0, berlin)},
		{"end is outside", time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC), berlin, "12:00", "14:00", false, time.Time{}},
		{"wrapping window before midnight", time.Date(2026, 3, 1, 22, 30, 0, 0, time.UTC), berlin, "22:00", "07:00", true, time.Date(2026, 3, 2, 7, 0, 0, 0, berlin)},
		{"wrapping window after midnight", time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC), berlin, "22:00", "07:00", true, time.Date(2026, 3, 2, 7, 0, 0, 0, berlin)},
		{"wrapping window, daytime", time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC), berlin, "22:00", "07:00", false, time.Time{}},
		{"empty window", time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC), berlin, "09:00", "09:00", false, time.Time{}},
		{"other zone", time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC), ny, "21:00", "08:00", true, time.Date(2026, 3, 2, 8, 0, 0, 0, ny)},
		{"spring forward night", time.Date(2026, 3, 8, 5, 0, 0, 0, time.UTC), ny, "00:00", "02:30", true, time.Date(2026, 3, 8, 2, 30, 0, 0, ny)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWindow(tt.start, tt.end)
			if err != nil {
				t.Fatal(err)
			}
			held, rel := ReleaseAt(tt.now, tt.loc, w)
			if held != tt.held || !rel.Equal(tt.release) {
				t.Fatalf("ReleaseAt = %v %v, want %v %v", held, rel, tt.held, tt.release)
			}
		})
	}
}

func TestParseClock(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"00:00", 0, true}, {"23:59", 1439, true}, {"07:30", 450, true},
		{"24:00", 0, false}, {"7:30", 0, false}, {"07:60", 0, false}, {"ab:cd", 0, false}, {"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseClock(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseClock(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
