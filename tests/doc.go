// Package tests holds roomlog's end-to-end scenarios: real embedded JetStream,
// real sockets, real clients. Nothing here is mocked.
package tests
