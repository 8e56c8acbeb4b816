package engine

import (
	"time"

	"github.com/roomlog/roomlog/domain"
)

// SetOutageClock makes e measure how long the log has been silent on now.
func (e *Engine) SetOutageClock(now func() time.Time) { e.outage.now = now }

// SetStepStored makes e call f after storing each step of a command.
func (e *Engine) SetStepStored(f func(domain.Key)) { e.stepStored = f }
