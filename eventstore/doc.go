// Package eventstore is the room log: an append-only, per-aggregate ordered
// log on NATS JetStream.
//
// Every aggregate (a room, a client session, an app-wide stream ID) has one
// subject. An append is conditional on the stream sequence of the last
// message on that subject (Nats-Expected-Last-Subject-Sequence) and
// idempotent (Nats-Msg-Id), so two writers can never both extend the same
// aggregate from the same version, and a lost acknowledgement can be retried
// safely.
//
// The package moves bytes: it knows nothing about domain events.
//
// # Subjects
//
// A subject is "<prefix>.<app>.<kind>.<id>", where app and id are encoded
// with Token (unpadded base64url) because user IDs may contain '.', '*',
// '>' or spaces, and kind is a fixed lowercase word. See Log.Subject.
//
// # Appending
//
// Append and AppendAsync always send the expected last subject sequence
// (0 meaning "the subject must be empty") and the Msg-Id. A stale
// expectation fails with a *ConflictError (ErrConflict): reload, decide
// again, retry. A log that does not answer fails with ErrUnavailable, and
// the append may or may not have been stored: retrying it with the same
// MsgID and Expected is safe, and yields ErrConflict if the first attempt
// had landed, because the server checks the expected sequence before it
// de-duplicates. Atomic multi-message batches are not used: on one
// file-store server each batch costs about 2 ms (a staging store built and
// fsynced per batch).
//
// # Durability
//
// Config.Sync chooses the embedded server's fsync policy. "interval"
// (JetStream's default, every 2 minutes) survives a process crash but can
// lose acknowledged appends on power loss; "always" fsyncs every append.
// Measured on the project's 2-core reference machine, embedded, in-process:
// one append at a time ≈ 44k/s (interval) vs ≈ 3.8k/s (always); pipelined
// across 1,000 subjects ≈ 134k/s vs ≈ 4.9k/s. With an external server the
// policy is that server's own configuration.
//
// # Reading
//
// Read and Tail stream through ordered consumers (≈ 350k records/s for a
// full replay); Last, Get and Search use direct gets. Reading one
// aggregate's subject is not free: the file store indexes only the first
// and last message of each subject per block, so a filtered read scans the
// stream between its start and its end (≈ 75 ns per message in the span:
// 100 records of one room interleaved in 100,000 take ≈ 7 ms). Load an
// aggregate from a recent starting sequence (see Search) or from a
// projection, not from the beginning of time.
package eventstore
