// Package engine executes commands against the log: load the states a
// decision needs, decide, append the decision's steps if the aggregates have
// not moved, and on a conflict catch up and decide again.
//
// It keeps the folded state of every aggregate it touched in memory. Memory is
// only a cache of the log: an append never succeeds unless the cached state is
// the log's latest (Nats-Expected-Last-Subject-Sequence), so two engines on
// one JetStream, or an engine and a stale cache, can never both extend an
// aggregate from the same version.
package engine
