package media

import (
	"fmt"
	"strings"
	"time"
)

// What a client's ICE candidates cost: the node sends connectivity checks
// to every address one names, so each stream's connections have a budget
// of them (Config.MaxRemoteCandidates).

// remoteICE is the client's ICE candidates a peer connection has, of its
// current ICE credentials (ufrag): a candidate is its transport address, so
// the same one trickled and then in an offer (whatever extensions its line
// carries) is one. They are forgotten at an ICE restart (new credentials),
// as the ICE agent forgets them. What new ones cost is the SFU's (spend).
type remoteICE struct {
	ufrag string
	seen  map[string]struct{}
}

// with returns r with cands, of the ICE credentials ufrag, and how many of
// them are new.
func (r remoteICE) with(ufrag string, cands []string) (next remoteICE, fresh int) {
	next = remoteICE{ufrag: ufrag, seen: map[string]struct{}{}}
	if ufrag == r.ufrag {
		for c := range r.seen {
			next.seen[c] = struct{}{}
		}
	}
	for _, c := range cands {
		k := candidateKey(c)
		if _, ok := next.seen[k]; k != "" && !ok {
			next.seen[k] = struct{}{}
			fresh++
		}
	}
	return next, fresh
}

// otherUfrag reports whether a trickled candidate line names ICE
// credentials (its "ufrag" extension, which browsers add) other than ufrag:
// one of an ICE restart whose offer is still on its way, which the ICE
// agent would drop. The restart's offer brings it again.
func otherUfrag(line, ufrag string) bool {
	f := strings.Fields(line)
	for i := 6; i+1 < len(f); i++ {
		if f[i] == "ufrag" {
			return ufrag != "" && f[i+1] != ufrag
		}
	}
	return false
}

// candidateBudget is what one stream's connection of a session (a peerKey:
// the budget outlives a connection replaced or closed and offered again)
// may still take of new ICE candidates: credit, in time, that a new
// candidate costs remoteRefill of, and that grows with the clock up to
// Config.MaxRemoteCandidates candidates' worth.
type candidateBudget struct {
	credit time.Duration
	at     time.Time // when credit was counted
	takes  uint64    // how many takes counted it (see SFU.spend's undo)
}

// remoteRefill is what a new candidate costs: a connection takes one more
// a second once it has spent its budget.
const remoteRefill = time.Second

// take spends n new candidates at now from a budget of at most most; an
// error, and nothing spent, if the credit is short. A clock that went back
// adds nothing.
func (b *candidateBudget) take(now time.Time, n, most int) error {
	full := time.Duration(most) * remoteRefill
	if b.at.IsZero() {
		b.credit = full
	} else if d := now.Sub(b.at); d > 0 {
		b.credit = min(full, b.credit+d)
	}
	b.at = now
	b.takes++
	cost := time.Duration(n) * remoteRefill
	if cost > b.credit {
		return fmt.Errorf("more ICE candidates than a connection may give (%d at once, then one a second)", most)
	}
	b.credit -= cost
	return nil
}

// full reports whether the budget has grown back to most by now: it is as
// good as none.
func (b *candidateBudget) full(now time.Time, most int) bool {
	return b.credit+max(now.Sub(b.at), 0) >= time.Duration(most)*remoteRefill
}

// spend takes n new ICE candidates of connection k from its budget, and
// returns what gives them back: for candidates the step that takes them
// refused (an offer that cannot be used, a candidate the ICE agent cannot
// read), which cost the node nothing. It gives back only while no other
// spend of k came after (that one's refill may have been cut at the
// budget's size: adding n then would give more than was taken).
func (s *SFU) spend(k peerKey, n int) (undo func(), err error) {
	if n == 0 {
		return func() {}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.budgets[k]
	if b == nil {
		b = &candidateBudget{}
		s.budgets[k] = b
	}
	if err := b.take(s.cfg.Now(), n, s.cfg.MaxRemoteCandidates); err != nil {
		return nil, err
	}
	takes := b.takes
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if b.takes == takes && s.budgets[k] == b {
			b.credit += time.Duration(n) * remoteRefill
			b.takes++ // once
		}
	}, nil
}

// pruneBudgets forgets the candidate budgets that have grown back full.
func (s *SFU) pruneBudgets() {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, b := range s.budgets {
		if b.full(now, s.cfg.MaxRemoteCandidates) {
			delete(s.budgets, k)
		}
	}
}

// candidateKey names the transport address an ICE candidate line
// ("candidate:..." or "a=candidate:...") gives: component, transport,
// address and port; the whole line if it cannot be read (the ICE agent
// refuses it then).
func candidateKey(line string) string {
	line = strings.TrimPrefix(strings.TrimSpace(line), "a=")
	f := strings.Fields(line)
	if len(f) < 6 || !strings.HasPrefix(f[0], "candidate:") {
		return line
	}
	return f[1] + " " + strings.ToLower(f[2]) + " " + strings.ToLower(f[4]) + " " + f[5]
}

// offerICE reads an offer's ICE credentials (its first ice-ufrag: a
// bundled offer has one) and its candidates.
func offerICE(sdp string) (ufrag string, cands []string) {
	for line := range strings.Lines(sdp) {
		line = strings.TrimSpace(line)
		if u, ok := strings.CutPrefix(line, "a=ice-ufrag:"); ok && ufrag == "" {
			ufrag = u
		} else if strings.HasPrefix(line, "a=candidate:") {
			cands = append(cands, line)
		}
	}
	return ufrag, cands
}
