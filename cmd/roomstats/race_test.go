//go:build race

package main

// raceEnabled: the race detector slows the embedded NATS server in the test
// process about eightfold.
const raceEnabled = true
