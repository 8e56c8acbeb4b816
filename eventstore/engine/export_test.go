package engine

import (
	"time"

	"github.com/roomlog/roomlog/domain"
)

// SetOutageClock makes e measure how long the log has been silent on now.
func (e *Engine) SetOutageClock(now func() time.Time) { e.outage.now = now }

// SetStepStored makes e call f after storing each step of a command.
func (e *Engine) SetStepStored(f func(domain.Key)) { e.stepStored = f }

// Users returns how many commands hold or wait for k's lock (read under
// its cache shard's lock, which the commands take to count themselves).
func (e *Engine) Users(k domain.Key) int {
	en := e.cache.peek(k)
	if en == nil {
		return 0
	}
	defer e.cache.release(en)
	en.shard.mu.Lock()
	defer en.shard.mu.Unlock()
	return en.users - 1
}
