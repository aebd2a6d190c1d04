package topics

import (
	"testing"
	"time"
)

func TestQuietHours(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	q := &QuietHours{Start: "22:00", End: "07:00", TimeZone: "Europe/Berlin"}
	cases := []struct {
		at    time.Time
		quiet bool
		end   time.Time
	}{
		{time.Date(2026, 11, 22, 23, 30, 0, 0, berlin), true, time.Date(2026, 11, 23, 7, 0, 0, 0, berlin)},
		{time.Date(2026, 11, 22, 6, 59, 0, 0, berlin), true, time.Date(2026, 11, 22, 7, 0, 0, 0, berlin)},
		{time.Date(2026, 11, 22, 7, 0, 0, 0, berlin), false, time.Time{}},
		{time.Date(2026, 11, 22, 21, 59, 0, 0, berlin), false, time.Time{}},
		{time.Date(2026, 11, 22, 22, 0, 0, 0, berlin), true, time.Date(2026, 11, 23, 7, 0, 0, 0, berlin)},
	}
	for _, c := range cases {
		quiet, end, err := q.Window(c.at.UTC())
		if err != nil || quiet != c.quiet || !end.Equal(c.end) {
			t.Errorf("at %s: quiet=%v end=%s err=%v, want %v %s", c.at, quiet, end, err, c.quiet, c.end)
		}
	}
	day := &QuietHours{Start: "12:00", End: "13:00"}
	if quiet, _, _ := day.Window(time.Date(2026, 11, 22, 12, 30, 0, 0, time.UTC)); !quiet {
		t.Error("12:30 UTC is within 12:00–13:00")
	}
	if _, err := ParseCustomer([]byte(`{"account_id":"a","quiet_hours":{"start":"25:00","end":"07:00"}}`)); err == nil {
		t.Error("an invalid quiet-hours time must be rejected")
	}
}
