// Package eventstore is the room log: an append-only, per-aggregate ordered
// log on NATS JetStream.
//
// Every aggregate (a room, a client session, an app-wide stream ID) has one
// subject. An append is conditional on the stream sequence of the last
// message on that subject (Nats-Expected-Last-Subject-Sequence) and
// idempotent (Nats-Msg-Id), so two writers can never both extend the same
// aggregate from the same version, and a lost acknowledgement can be retried
// safely.
package eventstore
