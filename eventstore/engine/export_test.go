package engine

import "time"

// SetOutageClock makes e measure how long the log has been silent on now.
func (e *Engine) SetOutageClock(now func() time.Time) { e.outage.now = now }
