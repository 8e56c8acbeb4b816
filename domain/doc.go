// Package domain decides and folds; it does nothing else.
//
// It holds the commands a client or a backend can send, the events that record
// what happened, the state of each aggregate as a fold of its events, and the
// decisions that turn (state, command, time) into events or a coded error.
// There is no I/O here, no goroutine and no clock: the time arrives with the
// command. That is what makes a replay of the log give exactly the state the
// clients saw.
//
// There are three kinds of aggregate, each with its own subject in the log:
//
//   - a room: its members, streams, plays, messages, extra info, attributes
//     and lifetime. Room-level rules (one session per user and room, roles,
//     rate limits, create/join/enter) are decided here.
//   - a session: one client connection's identity, room mode and the rooms it
//     has claimed. The per-session rules (one identity, at most N rooms) are
//     decided here.
//   - a stream ID: the app-wide registry entry that makes a published stream
//     ID unique.
//
// A command that spans aggregates is decided once over a View of all the
// states it needs and yields ordered Steps, one conditional append per
// aggregate. Claims are taken before a room is joined and released after it is
// left, so the invariants hold at every prefix of the log; docs/architecture.md
// explains why this is enough without cross-subject transactions.
package domain
