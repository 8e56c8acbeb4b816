package gateway

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/roomlog/roomlog/domain"
)

// roomLimits holds the node-local barrage rate limit of each room. A limiter
// that has refilled to its burst says nothing a new one would not, so those
// are swept whenever the map has doubled since the last sweep: memory
// follows the rooms with recent barrage, not every room ever seen, at an
// amortised constant cost per new room.
type roomLimits struct {
	mu      sync.Mutex
	limits  map[domain.Key]*rate.Limiter
	sweepAt int
}

// minSweep is the size below which the map is never swept.
const minSweep = 1024

func newRoomLimits() *roomLimits {
	return &roomLimits{limits: map[domain.Key]*rate.Limiter{}, sweepAt: minSweep}
}

// allow takes one message from room key's allowance of perSecond per second
// (bursts of up to perSecond) at now, and reports whether there was one.
func (r *roomLimits) allow(key domain.Key, now time.Time, perSecond int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.limits[key]
	if !ok {
		if len(r.limits) >= r.sweepAt {
			r.sweep(now)
			r.sweepAt = max(2*len(r.limits), minSweep)
		}
		l = rate.NewLimiter(rate.Limit(perSecond), perSecond)
		r.limits[key] = l
	}
	return l.AllowN(now, 1)
}

// sweep drops the limiters that are full at now.
func (r *roomLimits) sweep(now time.Time) {
	for k, l := range r.limits {
		if l.TokensAt(now) >= float64(l.Burst()) {
			delete(r.limits, k)
		}
	}
}

// size is the number of rooms with a limiter.
func (r *roomLimits) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.limits)
}
