// Package projections builds read models by folding the log: room
// membership, stream lists, connection state per (session, room), extra info
// and attributes, for every app.
//
// A model consumes log records in stream order and skips any record at or
// below its cursor, so applying the same record twice changes nothing. The
// fold is the domain's own Apply, so the read model of a room is exactly the
// state its decisions were made on; the same records always give
// byte-identical state (see Model.Hash).
package projections
